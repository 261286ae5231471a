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
        "t4"."customer_id"
      FROM (
        SELECT
          *
        FROM "profile_tags" AS "t1"
        WHERE
          "t1"."tenant_id" = 1 AND "t1"."tag" IN ('vip', 'svip')
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
) AS "t8"
