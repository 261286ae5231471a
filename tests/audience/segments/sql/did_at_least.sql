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
  ) AS "t5"
  WHERE
    "t5"."customer_id" IN (
      SELECT
        "t9"."customer_id"
      FROM (
        SELECT
          "t8"."customer_id",
          COUNT(*) AS "n"
        FROM (
          SELECT
            "t4"."customer_id"
          FROM (
            SELECT
              *
            FROM (
              SELECT
                *
              FROM "events" AS "t1"
              WHERE
                "t1"."tenant_id" = 1
            ) AS "t3"
            WHERE
              "t3"."event" = 'Product Viewed'
              AND "t3"."timestamp" >= MAKE_TIMESTAMPTZ(2026, 10, 2, 16, 0, 0.0, 'UTC')
              AND "t3"."timestamp" <= MAKE_TIMESTAMPTZ(2026, 11, 1, 4, 0, 0.0, 'UTC')
              AND (
                "t3"."properties" ->> '$.category'
              ) = '跑鞋'
          ) AS "t7"
          INNER JOIN (
            SELECT
              "t0"."profile_id",
              "t0"."customer_id"
            FROM "identity_map" AS "t0"
            WHERE
              "t0"."tenant_id" = 1
          ) AS "t4"
            ON "t7"."profile_id" = "t4"."profile_id"
        ) AS "t8"
        GROUP BY
          1
      ) AS "t9"
      WHERE
        "t9"."n" >= 3
    )
) AS "t11"
