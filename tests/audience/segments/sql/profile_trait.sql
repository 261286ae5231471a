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
          FIRST(
            CASE
              WHEN JSON_TYPE("t8"."traits" -> '$.city') = 'VARCHAR'
              THEN (
                "t8"."traits" -> '$.city'
              ) ->> '$'
              ELSE NULL
            END ORDER BY CASE WHEN "t8"."profile_id" = "t8"."customer_id" THEN 0 ELSE "t8"."profile_id" END
          ) AS "value"
        FROM (
          SELECT
            *
          FROM (
            SELECT
              "t6"."tenant_id",
              "t6"."profile_id",
              "t6"."created_at",
              "t6"."first_seen_at",
              "t6"."last_seen_at",
              "t6"."event_count",
              "t6"."traits",
              "t6"."erased_at",
              "t4"."customer_id"
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
            CASE
              WHEN JSON_TYPE("t7"."traits" -> '$.city') = 'VARCHAR'
              THEN (
                "t7"."traits" -> '$.city'
              ) ->> '$'
              ELSE NULL
            END IS NOT NULL
        ) AS "t8"
        GROUP BY
          1
      ) AS "t9"
      WHERE
        "t9"."value" = '杭州'
    )
) AS "t11"
