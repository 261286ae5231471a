WITH "t17" AS (
  SELECT
    *
  FROM (
    SELECT
      "t8"."customer_id",
      CASE WHEN "t12"."profile_id" = "t8"."customer_id" THEN 0 ELSE "t12"."profile_id" END AS "rank",
      CASE
        WHEN JSON_TYPE("t12"."traits" -> '$.city') = 'VARCHAR'
        THEN (
          "t12"."traits" -> '$.city'
        ) ->> '$'
        ELSE NULL
      END AS "value"
    FROM (
      SELECT
        *
      FROM "profiles" AS "t3"
      WHERE
        "t3"."tenant_id" = 1 AND "t3"."traits" IS NOT NULL
    ) AS "t12"
    INNER JOIN (
      SELECT
        "t0"."profile_id",
        "t0"."customer_id"
      FROM "identity_map" AS "t0"
      WHERE
        "t0"."tenant_id" = 1
    ) AS "t8"
      ON "t12"."profile_id" = "t8"."profile_id"
  ) AS "t15"
  WHERE
    "t15"."value" IS NOT NULL
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
  ) AS "t9"
  WHERE
    (
      "t9"."customer_id" IN (
        SELECT
          "t23"."customer_id"
        FROM (
          SELECT
            "t19"."customer_id",
            "t19"."rank",
            "t19"."value",
            "t22"."best_id",
            "t22"."best_rank"
          FROM "t17" AS "t19"
          INNER JOIN (
            SELECT
              "t18"."customer_id" AS "best_id",
              MIN("t18"."rank") AS "best_rank"
            FROM "t17" AS "t18"
            GROUP BY
              1
          ) AS "t22"
            ON "t19"."customer_id" = "t22"."best_id" AND "t19"."rank" = "t22"."best_rank"
        ) AS "t23"
        WHERE
          "t23"."value" = '杭州'
      )
      OR "t9"."customer_id" IN (
        SELECT
          "t8"."customer_id"
        FROM (
          SELECT
            *
          FROM "profile_tags" AS "t1"
          WHERE
            "t1"."tenant_id" = 1 AND "t1"."tag" = 'staff'
        ) AS "t10"
        INNER JOIN (
          SELECT
            "t0"."profile_id",
            "t0"."customer_id"
          FROM "identity_map" AS "t0"
          WHERE
            "t0"."tenant_id" = 1
        ) AS "t8"
          ON "t10"."profile_id" = "t8"."profile_id"
      )
    )
    AND NOT (
      "t9"."customer_id" IN (
        SELECT
          "t16"."customer_id"
        FROM (
          SELECT
            "t14"."customer_id",
            SUM("t14"."amount") AS "value"
          FROM (
            SELECT
              "t11"."id",
              "t11"."tenant_id",
              "t11"."profile_id",
              "t11"."account_id",
              "t11"."operation_id",
              "t11"."kind",
              "t11"."amount",
              "t11"."created_at",
              "t8"."customer_id"
            FROM (
              SELECT
                *
              FROM "points_entries" AS "t2"
              WHERE
                "t2"."tenant_id" = 1
            ) AS "t11"
            INNER JOIN (
              SELECT
                "t0"."profile_id",
                "t0"."customer_id"
              FROM "identity_map" AS "t0"
              WHERE
                "t0"."tenant_id" = 1
            ) AS "t8"
              ON "t11"."profile_id" = "t8"."profile_id"
          ) AS "t14"
          GROUP BY
            1
        ) AS "t16"
        WHERE
          "t16"."value" >= 1000
      )
    )
) AS "t25"
