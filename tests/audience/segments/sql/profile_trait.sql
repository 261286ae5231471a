WITH "t7" AS (
  SELECT
    "t4"."customer_id",
    "t6"."profile_id",
    "t6"."traits" ->> '$.city' AS "value"
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
        "t18"."customer_id"
      FROM (
        SELECT
          *
        FROM (
          SELECT
            "t8"."customer_id",
            "t8"."value"
          FROM "t7" AS "t8"
          WHERE
            "t8"."value" IS NOT NULL AND "t8"."profile_id" = "t8"."customer_id"
        ) AS "t9"
        UNION ALL
        SELECT
          *
        FROM (
          SELECT
            "t13"."customer_id",
            "t13"."value"
          FROM (
            SELECT
              *
            FROM "t7" AS "t8"
            WHERE
              "t8"."value" IS NOT NULL AND "t8"."profile_id" <> "t8"."customer_id"
          ) AS "t13"
          ANTI JOIN (
            SELECT
              "t8"."customer_id" AS "owner"
            FROM "t7" AS "t8"
            WHERE
              "t8"."value" IS NOT NULL AND "t8"."profile_id" = "t8"."customer_id"
          ) AS "t12"
            ON "t13"."customer_id" = "t12"."owner"
          INNER JOIN (
            SELECT
              "t14"."customer_id" AS "lowest_of",
              MIN("t14"."profile_id") AS "lowest_id"
            FROM (
              SELECT
                "t13"."customer_id",
                "t13"."profile_id",
                "t13"."value"
              FROM (
                SELECT
                  *
                FROM "t7" AS "t8"
                WHERE
                  "t8"."value" IS NOT NULL AND "t8"."profile_id" <> "t8"."customer_id"
              ) AS "t13"
              ANTI JOIN (
                SELECT
                  "t8"."customer_id" AS "owner"
                FROM "t7" AS "t8"
                WHERE
                  "t8"."value" IS NOT NULL AND "t8"."profile_id" = "t8"."customer_id"
              ) AS "t12"
                ON "t13"."customer_id" = "t12"."owner"
            ) AS "t14"
            GROUP BY
              1
          ) AS "t16"
            ON "t13"."profile_id" = "t16"."lowest_id"
        ) AS "t17"
      ) AS "t18"
      WHERE
        "t18"."value" = '杭州'
    )
) AS "t20"
