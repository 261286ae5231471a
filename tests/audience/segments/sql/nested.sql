WITH "t15" AS (
  SELECT
    "t8"."customer_id",
    "t12"."profile_id",
    "t12"."traits" ->> '$.city' AS "value"
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
          "t28"."customer_id"
        FROM (
          SELECT
            *
          FROM (
            SELECT
              "t16"."customer_id",
              "t16"."value"
            FROM "t15" AS "t16"
            WHERE
              "t16"."value" IS NOT NULL AND "t16"."profile_id" = "t16"."customer_id"
          ) AS "t18"
          UNION ALL
          SELECT
            *
          FROM (
            SELECT
              "t22"."customer_id",
              "t22"."value"
            FROM (
              SELECT
                *
              FROM "t15" AS "t16"
              WHERE
                "t16"."value" IS NOT NULL AND "t16"."profile_id" <> "t16"."customer_id"
            ) AS "t22"
            ANTI JOIN (
              SELECT
                "t16"."customer_id" AS "owner"
              FROM "t15" AS "t16"
              WHERE
                "t16"."value" IS NOT NULL AND "t16"."profile_id" = "t16"."customer_id"
            ) AS "t21"
              ON "t22"."customer_id" = "t21"."owner"
            INNER JOIN (
              SELECT
                "t24"."customer_id" AS "lowest_of",
                MIN("t24"."profile_id") AS "lowest_id"
              FROM (
                SELECT
                  "t22"."customer_id",
                  "t22"."profile_id",
                  "t22"."value"
                FROM (
                  SELECT
                    *
                  FROM "t15" AS "t16"
                  WHERE
                    "t16"."value" IS NOT NULL AND "t16"."profile_id" <> "t16"."customer_id"
                ) AS "t22"
                ANTI JOIN (
                  SELECT
                    "t16"."customer_id" AS "owner"
                  FROM "t15" AS "t16"
                  WHERE
                    "t16"."value" IS NOT NULL AND "t16"."profile_id" = "t16"."customer_id"
                ) AS "t21"
                  ON "t22"."customer_id" = "t21"."owner"
              ) AS "t24"
              GROUP BY
                1
            ) AS "t26"
              ON "t22"."profile_id" = "t26"."lowest_id"
          ) AS "t27"
        ) AS "t28"
        WHERE
          "t28"."value" = '杭州'
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
          "t17"."customer_id"
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
        ) AS "t17"
        WHERE
          "t17"."value" >= 1000
      )
    )
) AS "t30"
