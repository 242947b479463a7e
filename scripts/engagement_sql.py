"""The engagement columns of docs/design.md §3 in DuckDB SQL with window functions: the independent
reference for the parity check and the peer in the clickstream race.

Identity: a visitor's events belong to the smallest customer id any of its events names.
Sessions: per customer, ordered by time, a new one after more than 30 minutes without an event
(the generated data has no session ids). `last_orders` is a relation with `customer_id` and
`last_order_date`.
"""


def engagement_sql(raw_events: str, last_orders: str, as_of: str) -> str:
    """`raw_events`: a relation with ts (TIMESTAMP), customer_id, visitor_id, event_type,
    page_type, category (NULL when absent)."""
    return f"""
WITH raw AS ({raw_events}), link AS (
  SELECT visitor_id, min(customer_id) AS linked FROM raw
  WHERE visitor_id IS NOT NULL AND customer_id IS NOT NULL GROUP BY visitor_id
), ev AS (
  SELECT coalesce(r.customer_id, l.linked) AS customer_id, r.ts, r.event_type, r.page_type,
         r.category
  FROM raw r LEFT JOIN link l USING (visitor_id)
  WHERE coalesce(r.customer_id, l.linked) IS NOT NULL AND CAST(r.ts AS DATE) <= DATE '{as_of}'
), gaps AS (
  SELECT *, CASE WHEN lag(ts) OVER w IS NULL OR ts - lag(ts) OVER w > INTERVAL 30 MINUTE
                 THEN 1 ELSE 0 END AS starts
  FROM ev WINDOW w AS (PARTITION BY customer_id ORDER BY ts, event_type)
), sess AS (
  SELECT *, sum(starts) OVER (PARTITION BY customer_id ORDER BY ts, event_type
                              ROWS UNBOUNDED PRECEDING) AS session
  FROM gaps
), per_session AS (
  SELECT customer_id, session, count(*) AS events, min(CAST(ts AS DATE)) AS start_day,
         count(*) FILTER (event_type = 'product_view') AS views,
         count(*) FILTER (event_type = 'add_to_cart') AS carts,
         count(*) FILTER (event_type = 'purchase') > 0 AS purchase,
         arg_max(page_type, ts) IN ('price', 'shipping', 'payment') AS price_exit
  FROM sess GROUP BY customer_id, session
), f AS ({last_orders})
SELECT s.customer_id,
  count(*) AS sessions,
  count(*) FILTER (DATE '{as_of}' - start_day < 30) AS sessions_30d,
  count(*) FILTER (DATE '{as_of}' - start_day < 90) AS sessions_90d,
  sum(events) / count(*) AS events_per_session,
  count(*) FILTER (events = 1) / count(*) AS bounce_rate,
  sum(views) AS product_views,
  CASE WHEN sum(views) > 0 THEN sum(carts) / sum(views) END AS view_to_cart_rate,
  CASE WHEN count(*) FILTER (carts > 0) > 0
       THEN count(*) FILTER (carts > 0 AND purchase) / count(*) FILTER (carts > 0) END AS cart_to_purchase_rate,
  CASE WHEN count(*) FILTER (carts > 0) > 0
       THEN count(*) FILTER (carts > 0 AND NOT purchase) / count(*) FILTER (carts > 0) END AS cart_abandonment_rate,
  count(*) FILTER (price_exit AND NOT purchase) / count(*) AS price_page_exit_rate,
  count(*) FILTER (views >= 3 AND carts = 0) AS browse_no_buy_sessions,
  count(*) FILTER (f.last_order_date IS NULL OR start_day > f.last_order_date) AS visits_since_last_order,
  any_value(DATE '{as_of}' - lv.last_day) AS days_since_last_visit,
  any_value(cv.categories) AS categories_viewed
FROM per_session s
JOIN (SELECT customer_id, max(CAST(ts AS DATE)) AS last_day FROM ev GROUP BY 1) lv USING (customer_id)
JOIN (SELECT customer_id, count(DISTINCT category) AS categories FROM ev GROUP BY 1) cv USING (customer_id)
LEFT JOIN f USING (customer_id)
GROUP BY s.customer_id
"""


def click_events(path: str) -> str:
    """The raw events of a clickstream (CSV, or Parquet as `patronage generate` writes it beside
    Parquet orders) as `engagement_sql` wants them."""
    if path.endswith(".parquet"):
        return f"""
  SELECT CAST(event_ts AS TIMESTAMP) AS ts, nullif(CAST(customer_id AS VARCHAR), '') AS customer_id,
         nullif(visitor_id, '') AS visitor_id, event_type, nullif(page_type, '') AS page_type,
         nullif(category, '') AS category
  FROM read_parquet('{path}')"""
    return f"""
  SELECT CAST(event_ts AS TIMESTAMP) AS ts, nullif(customer_id, '') AS customer_id,
         nullif(visitor_id, '') AS visitor_id, event_type, nullif(page_type, '') AS page_type,
         nullif(category, '') AS category
  FROM read_csv('{path}', header = true, all_varchar = true)"""
