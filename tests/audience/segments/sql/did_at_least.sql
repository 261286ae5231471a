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
  ) AS "t4"
  WHERE
    "t4"."customer_id" IN (
      SELECT
        "t8"."customer_id"
      FROM (
        SELECT
          "t7"."customer_id",
          COUNT(*) AS "n"
        FROM (
          SELECT
            "t3"."customer_id"
          FROM (
            SELECT
              *
            FROM "events" AS "t1"
            WHERE
              "t1"."tenant_id" = 1
              AND "t1"."event" = 'Product Viewed'
              AND "t1"."timestamp" >= MAKE_TIMESTAMPTZ(2026, 10, 2, 16, 0, 0.0, 'UTC')
              AND "t1"."timestamp" <= MAKE_TIMESTAMPTZ(2026, 11, 1, 4, 0, 0.0, 'UTC')
              AND CASE
                WHEN JSON_TYPE("t1"."properties" -> '$.category') = 'VARCHAR'
                THEN (
                  "t1"."properties" -> '$.category'
                ) ->> '$'
                ELSE NULL
              END = '跑鞋'
          ) AS "t6"
          INNER JOIN (
            SELECT
              "t0"."profile_id",
              "t0"."customer_id"
            FROM "identity_map" AS "t0"
            WHERE
              "t0"."tenant_id" = 1
          ) AS "t3"
            ON "t6"."profile_id" = "t3"."profile_id"
        ) AS "t7"
        GROUP BY
          1
      ) AS "t8"
      WHERE
        "t8"."n" >= 3
    )
) AS "t10"
