WITH "t8" AS (
  SELECT
    *
  FROM (
    SELECT
      "t4"."customer_id",
      CASE WHEN "t6"."profile_id" = "t4"."customer_id" THEN 0 ELSE "t6"."profile_id" END AS "rank",
      CASE
        WHEN JSON_TYPE("t6"."traits" -> '$.city') = 'VARCHAR'
        THEN (
          "t6"."traits" -> '$.city'
        ) ->> '$'
        ELSE NULL
      END AS "value"
    FROM (
      SELECT
        *
      FROM "profiles" AS "t1"
      WHERE
        "t1"."tenant_id" = 1 AND "t1"."traits" IS NOT NULL
    ) AS "t6"
    INNER JOIN (
      SELECT
        "t0"."profile_id",
        "t0"."customer_id"
      FROM "identity_map" AS "t0"
      WHERE
        "t0"."tenant_id" = 1
    ) AS "t4"
      ON "t6"."profile_id" = "t4"."profile_id"
  ) AS "t7"
  WHERE
    "t7"."value" IS NOT NULL
)
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
        "t13"."customer_id"
      FROM (
        SELECT
          "t10"."customer_id",
          "t10"."rank",
          "t10"."value",
          "t12"."best_id",
          "t12"."best_rank"
        FROM "t8" AS "t10"
        INNER JOIN (
          SELECT
            "t9"."customer_id" AS "best_id",
            MIN("t9"."rank") AS "best_rank"
          FROM "t8" AS "t9"
          GROUP BY
            1
        ) AS "t12"
          ON "t10"."customer_id" = "t12"."best_id" AND "t10"."rank" = "t12"."best_rank"
      ) AS "t13"
      WHERE
        "t13"."value" = '杭州'
    )
) AS "t15"
