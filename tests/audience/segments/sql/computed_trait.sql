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
  ) AS "t3"
  WHERE
    "t3"."customer_id" IN (
      SELECT
        "t1"."customer_id"
      FROM "customer_traits" AS "t1"
      WHERE
        "t1"."tenant_id" = 1 AND "t1"."rfm_group" IN ('champions', 'loyal')
    )
) AS "t4"
