SELECT
  COUNT(*) AS "CountStar()"
FROM (
  SELECT
    *
  FROM (
    SELECT
      "t0"."customer_id"
    FROM "identity_map" AS "t0"
    WHERE
      "t0"."tenant_id" = 1
      AND "t0"."profile_id" = "t0"."customer_id"
      AND NOT (
        COALESCE("t0"."erased", FALSE)
      )
  ) AS "t7"
  WHERE
    "t7"."customer_id" IN (
      SELECT
        "t11"."customer_id"
      FROM (
        SELECT
          "t10"."customer_id",
          SUM("t10"."net") AS "n"
        FROM (
          SELECT
            "t6"."customer_id",
            "t9"."id",
            "t9"."paid_fen" - "t9"."refunded_fen" AS "net"
          FROM (
            SELECT
              *
            FROM (
              SELECT
                *
              FROM "orders" AS "t1"
              WHERE
                "t1"."tenant_id" = 1
            ) AS "t4"
            WHERE
              "t4"."status" <> 'refunded'
              AND "t4"."profile_id" IS NOT NULL
              AND "t4"."ordered_at" >= MAKE_TIMESTAMPTZ(2025, 12, 31, 16, 0, 0.0, 'UTC')
              AND "t4"."ordered_at" < MAKE_TIMESTAMPTZ(2026, 3, 31, 16, 0, 0.0, 'UTC')
              AND "t4"."store_id" IN (
                SELECT
                  "t2"."id"
                FROM "stores" AS "t2"
                WHERE
                  "t2"."tenant_id" = 1
                  AND "t2"."code" IN ('SH001', 'SH002')
                  AND "t2"."city" IN ('上海')
              )
          ) AS "t9"
          INNER JOIN (
            SELECT
              "t0"."profile_id",
              "t0"."customer_id"
            FROM "identity_map" AS "t0"
            WHERE
              "t0"."tenant_id" = 1
          ) AS "t6"
            ON "t9"."profile_id" = "t6"."profile_id"
        ) AS "t10"
        GROUP BY
          1
      ) AS "t11"
      WHERE
        "t11"."n" >= 100000
    )
) AS "t13"
