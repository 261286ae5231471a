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
    NOT (
      "t5"."customer_id" IN (
        SELECT
          "t8"."customer_id"
        FROM (
          SELECT
            "t7"."customer_id",
            SUM("t7"."amount") AS "value"
          FROM (
            SELECT
              "t6"."id",
              "t6"."tenant_id",
              "t6"."profile_id",
              "t6"."account_id",
              "t6"."operation_id",
              "t6"."kind",
              "t6"."amount",
              "t6"."created_at",
              "t4"."customer_id"
            FROM (
              SELECT
                *
              FROM "points_entries" AS "t1"
              WHERE
                "t1"."tenant_id" = 1
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
          GROUP BY
            1
        ) AS "t8"
        WHERE
          NOT (
            "t8"."value" < 100
          )
      )
    )
) AS "t10"
