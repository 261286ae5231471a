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
  ) AS "t11"
  WHERE
    "t11"."customer_id" IN (
      SELECT
        "t10"."customer_id"
      FROM (
        SELECT
          *
        FROM (
          SELECT
            *
          FROM "order_lines" AS "t1"
          WHERE
            "t1"."tenant_id" = 1
        ) AS "t5"
        WHERE
          "t5"."quantity" > COALESCE("t5"."refunded_quantity", 0)
          AND "t5"."category_code" IN (
            SELECT
              "t16"."code"
            FROM (
              SELECT
                "t13"."code",
                "t13"."up0",
                "t13"."up1",
                "t14"."up2",
                "t15"."up3"
              FROM (
                SELECT
                  "t3"."code",
                  "t3"."code" AS "up0",
                  "t3"."parent_code" AS "up1"
                FROM "categories" AS "t3"
                WHERE
                  "t3"."tenant_id" = 1
              ) AS "t13"
              LEFT OUTER JOIN (
                SELECT
                  "t3"."code" AS "up1",
                  "t3"."parent_code" AS "up2"
                FROM "categories" AS "t3"
                WHERE
                  "t3"."tenant_id" = 1
              ) AS "t14"
                ON "t13"."up1" = "t14"."up1"
              LEFT OUTER JOIN (
                SELECT
                  "t3"."code" AS "up2",
                  "t3"."parent_code" AS "up3"
                FROM "categories" AS "t3"
                WHERE
                  "t3"."tenant_id" = 1
              ) AS "t15"
                ON "t14"."up2" = "t15"."up2"
            ) AS "t16"
            WHERE
              "t16"."up0" IN ('C01')
              OR "t16"."up1" IN ('C01')
              OR "t16"."up2" IN ('C01')
              OR "t16"."up3" IN ('C01')
          )
      ) AS "t19"
      INNER JOIN (
        SELECT
          *
        FROM "orders" AS "t2"
        WHERE
          "t2"."tenant_id" = 1
          AND "t2"."status" <> 'refunded'
          AND "t2"."profile_id" IS NOT NULL
          AND "t2"."ordered_at" >= MAKE_TIMESTAMPTZ(2026, 8, 3, 16, 0, 0.0, 'UTC')
          AND "t2"."ordered_at" <= MAKE_TIMESTAMPTZ(2026, 11, 1, 4, 0, 0.0, 'UTC')
      ) AS "t12"
        ON "t19"."order_id" = "t12"."id"
      INNER JOIN (
        SELECT
          "t0"."profile_id",
          "t0"."customer_id"
        FROM "identity_map" AS "t0"
        WHERE
          "t0"."tenant_id" = 1
      ) AS "t10"
        ON "t12"."profile_id" = "t10"."profile_id"
    )
) AS "t21"
