//! The clickstream contract (DESIGN §2) and engagement features from it (DESIGN §3).
//!
//! Events are validated and identity-stitched by the input crate; here they are sessionized
//! per customer and summarized. A session is the events sharing a given `session_id`, or
//! (events without one) a run of events with no gap longer than the session gap. Sessions are
//! cut per customer after sorting by time, so input row order and file splits change nothing.
//! A session that spans midnight stays one session.
//!
//! Definitions (per customer, events on or before the as-of day; a *price page* is a page of
//! type price, shipping or payment):
//! - `sessions`, `sessions_30d`, `sessions_90d` (starting in the last 30/90 days),
//!   `days_since_last_visit`, `events_per_session`, `bounce_rate` (one-event sessions / sessions);
//! - `product_views` (product_view events), `view_to_cart_rate` (add_to_cart / product_view
//!   events), `cart_to_purchase_rate` (sessions with an add-to-cart and a purchase / sessions
//!   with an add-to-cart), `cart_abandonment_rate` (sessions with an add-to-cart and no purchase
//!   / sessions with an add-to-cart), `price_page_exit_rate` (sessions whose last event is on a
//!   price page and that have no purchase / sessions), `browse_no_buy_sessions` (≥ 3 product
//!   views, no add-to-cart), `categories_viewed` (distinct categories of the events),
//!   `visits_since_last_order` (sessions starting after the last order day; all sessions for a
//!   customer without an order).
//!
//! Not yet streaming: one customer's events are sorted in memory (issue #16 makes this a
//! mergeable partial).

use rayon::prelude::*;

use crate::{Day, FeatureTable, Values};

/// Canonical event types; anything else is `Other` (kept and counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    PageView,
    ProductView,
    Search,
    AddToCart,
    RemoveFromCart,
    Checkout,
    Purchase,
    WishlistAdd,
    Review,
    Other,
}

impl EventType {
    pub const ALL: [EventType; 10] = [
        EventType::PageView,
        EventType::ProductView,
        EventType::Search,
        EventType::AddToCart,
        EventType::RemoveFromCart,
        EventType::Checkout,
        EventType::Purchase,
        EventType::WishlistAdd,
        EventType::Review,
        EventType::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EventType::PageView => "page_view",
            EventType::ProductView => "product_view",
            EventType::Search => "search",
            EventType::AddToCart => "add_to_cart",
            EventType::RemoveFromCart => "remove_from_cart",
            EventType::Checkout => "checkout",
            EventType::Purchase => "purchase",
            EventType::WishlistAdd => "wishlist_add",
            EventType::Review => "review",
            EventType::Other => "other",
        }
    }

    /// The canonical type of a canonical name.
    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|e| e.name() == name)
    }
}

/// Validated, identity-stitched events: only events linked to a customer (anonymous traffic is
/// counted by the input crate, not kept).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Clicks {
    /// Customer dictionary; `customer` indexes it.
    pub customer_ids: Vec<String>,
    pub customer: Vec<u32>,
    /// Event time, µs since the epoch (UTC).
    pub micros: Vec<i64>,
    pub event: Vec<EventType>,
    /// The event is on a price, shipping or payment page.
    pub price_page: Vec<bool>,
    /// Given session id (an index into a dictionary of the input's session ids), if any.
    pub session: Vec<Option<u32>>,
    /// Category (an index into `category_names`), if any.
    pub category: Vec<Option<u32>>,
    pub category_names: Vec<String>,
}

impl Clicks {
    pub fn len(&self) -> usize {
        self.customer.len()
    }

    pub fn is_empty(&self) -> bool {
        self.customer.is_empty()
    }

    /// Ids of the customers with an event on or before `as_of`.
    pub fn customers_until(&self, as_of: Day) -> impl Iterator<Item = &str> + '_ {
        let mut seen = vec![false; self.customer_ids.len()];
        for (c, m) in self.customer.iter().zip(&self.micros) {
            if day_of(*m) <= as_of {
                seen[*c as usize] = true;
            }
        }
        self.customer_ids
            .iter()
            .zip(seen)
            .filter(|(_, s)| *s)
            .map(|(id, _)| id.as_str())
    }
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

fn day_of(micros: i64) -> Day {
    micros.div_euclid(MICROS_PER_DAY) as Day
}

/// One customer's engagement summary.
#[derive(Debug, Clone, Default, PartialEq)]
struct Engagement {
    sessions: i64,
    sessions_30d: i64,
    sessions_90d: i64,
    last_day: Day,
    events: i64,
    bounces: i64,
    product_views: i64,
    add_to_carts: i64,
    cart_sessions: i64,
    cart_purchase_sessions: i64,
    price_exits: i64,
    browse_no_buy: i64,
    categories: i64,
    /// Session start days (for visits since the last order).
    session_days: Vec<Day>,
}

/// Engagement of one customer from their events (`idx` into `clicks`, any order).
fn engagement(clicks: &Clicks, idx: &mut [u32], gap_micros: i64, as_of: Day) -> Engagement {
    // Time order; ties broken by the event's content so that row order never matters.
    idx.sort_unstable_by_key(|&i| {
        let i = i as usize;
        (
            clicks.micros[i],
            clicks.session[i],
            clicks.event[i],
            clicks.price_page[i],
            clicks.category[i],
        )
    });
    // Sessions: given ids group their events; the others are cut at gaps.
    let mut sessions: Vec<Vec<u32>> = Vec::new();
    let mut given: std::collections::BTreeMap<u32, usize> = Default::default();
    let mut open: Option<(usize, i64)> = None;
    for &i in idx.iter() {
        let iu = i as usize;
        match clicks.session[iu] {
            Some(s) => {
                let k = *given.entry(s).or_insert_with(|| {
                    sessions.push(Vec::new());
                    sessions.len() - 1
                });
                sessions[k].push(i);
            }
            None => {
                let t = clicks.micros[iu];
                match open {
                    Some((k, last)) if t - last <= gap_micros => {
                        sessions[k].push(i);
                        open = Some((k, t));
                    }
                    _ => {
                        sessions.push(vec![i]);
                        open = Some((sessions.len() - 1, t));
                    }
                }
            }
        }
    }
    let mut e = Engagement {
        sessions: sessions.len() as i64,
        events: idx.len() as i64,
        ..Engagement::default()
    };
    let mut categories: Vec<u32> = idx
        .iter()
        .filter_map(|&i| clicks.category[i as usize])
        .collect();
    categories.sort_unstable();
    categories.dedup();
    e.categories = categories.len() as i64;
    e.last_day = idx.last().map_or(0, |&i| day_of(clicks.micros[i as usize]));
    for s in &sessions {
        let start = day_of(clicks.micros[s[0] as usize]);
        e.session_days.push(start);
        if as_of - start < 30 {
            e.sessions_30d += 1;
        }
        if as_of - start < 90 {
            e.sessions_90d += 1;
        }
        if s.len() == 1 {
            e.bounces += 1;
        }
        let count =
            |t: EventType| s.iter().filter(|&&i| clicks.event[i as usize] == t).count() as i64;
        let views = count(EventType::ProductView);
        let carts = count(EventType::AddToCart);
        let purchase = count(EventType::Purchase) > 0;
        e.product_views += views;
        e.add_to_carts += carts;
        if carts > 0 {
            e.cart_sessions += 1;
            if purchase {
                e.cart_purchase_sessions += 1;
            }
        }
        let last = *s.last().unwrap_or(&s[0]) as usize;
        if clicks.price_page[last] && !purchase {
            e.price_exits += 1;
        }
        if views >= 3 && carts == 0 {
            e.browse_no_buy += 1;
        }
    }
    e
}

/// Engagement columns over the index the clicks are keyed by (`clicks.customer` = index
/// position, `customers` = index length); `last_order_day` per customer (from the order
/// features) for `visits_since_last_order`. Customers without events have null engagement.
pub fn engagement_features(
    clicks: &Clicks,
    customers: usize,
    as_of: Day,
    session_gap_minutes: u32,
    last_order_day: &[Option<Day>],
) -> FeatureTable {
    let gap = i64::from(session_gap_minutes) * 60_000_000;
    let mut by_customer: Vec<Vec<u32>> = vec![Vec::new(); customers];
    for i in 0..clicks.len() {
        if day_of(clicks.micros[i]) <= as_of {
            by_customer[clicks.customer[i] as usize].push(i as u32);
        }
    }
    let rows: Vec<Option<Engagement>> = by_customer
        .into_par_iter()
        .map(|mut idx| (!idx.is_empty()).then(|| engagement(clicks, &mut idx, gap, as_of)))
        .collect();
    let int = |f: &(dyn Fn(&Engagement) -> i64 + Sync)| -> Values {
        Values::Int(rows.par_iter().map(|r| r.as_ref().map(f)).collect())
    };
    let ratio = |num: &(dyn Fn(&Engagement) -> i64 + Sync),
                 den: &(dyn Fn(&Engagement) -> i64 + Sync)|
     -> Values {
        Values::Float(
            rows.par_iter()
                .map(|r| {
                    r.as_ref()
                        .filter(|e| den(e) > 0)
                        .map(|e| num(e) as f64 / den(e) as f64)
                })
                .collect(),
        )
    };
    let mut t = FeatureTable::new(customers);
    t.push(
        "sessions",
        "clickstream: sessions (count)",
        int(&|e| e.sessions),
    );
    t.push(
        "sessions_30d",
        "clickstream: sessions starting in the 30 days up to the as-of day",
        int(&|e| e.sessions_30d),
    );
    t.push(
        "sessions_90d",
        "clickstream: sessions starting in the 90 days up to the as-of day",
        int(&|e| e.sessions_90d),
    );
    t.push(
        "days_since_last_visit",
        "clickstream: as-of day − day of the last event (days)",
        int(&|e| i64::from(as_of - e.last_day)),
    );
    t.push(
        "events_per_session",
        "clickstream: events / sessions",
        ratio(&|e| e.events, &|e| e.sessions),
    );
    t.push(
        "bounce_rate",
        "clickstream: one-event sessions / sessions",
        ratio(&|e| e.bounces, &|e| e.sessions),
    );
    t.push(
        "product_views",
        "clickstream: product_view events (count)",
        int(&|e| e.product_views),
    );
    t.push(
        "view_to_cart_rate",
        "clickstream: add_to_cart events / product_view events; null without views",
        ratio(&|e| e.add_to_carts, &|e| e.product_views),
    );
    t.push(
        "cart_to_purchase_rate",
        "clickstream: sessions with an add-to-cart and a purchase / sessions with an add-to-cart",
        ratio(&|e| e.cart_purchase_sessions, &|e| e.cart_sessions),
    );
    t.push(
        "cart_abandonment_rate",
        "clickstream: sessions with an add-to-cart and no purchase / sessions with an add-to-cart",
        ratio(&|e| e.cart_sessions - e.cart_purchase_sessions, &|e| {
            e.cart_sessions
        }),
    );
    t.push("price_page_exit_rate", "clickstream: sessions ending on a price, shipping or payment page without a purchase / sessions", ratio(&|e| e.price_exits, &|e| e.sessions));
    t.push(
        "browse_no_buy_sessions",
        "clickstream: sessions with ≥ 3 product views and no add-to-cart (count)",
        int(&|e| e.browse_no_buy),
    );
    t.push(
        "categories_viewed",
        "clickstream: distinct categories of the events (count)",
        int(&|e| e.categories),
    );
    let since: Vec<Option<i64>> = rows
        .iter()
        .zip(last_order_day)
        .map(|(r, last)| {
            r.as_ref().map(|e| {
                e.session_days
                    .iter()
                    .filter(|d| last.is_none_or(|l| **d > l))
                    .count() as i64
            })
        })
        .collect();
    t.push(
        "visits_since_last_order",
        "clickstream: sessions starting after the last order day (all, without an order)",
        Values::Int(since),
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000;

    /// (customer, µs, event, price page, session, category).
    type Event = (u32, i64, EventType, bool, Option<u32>, Option<u32>);

    fn clicks(rows: &[Event]) -> Clicks {
        let mut c = Clicks {
            customer_ids: vec!["a".into(), "b".into()],
            category_names: vec!["x".into(), "y".into()],
            ..Default::default()
        };
        for r in rows {
            c.customer.push(r.0);
            c.micros.push(r.1);
            c.event.push(r.2);
            c.price_page.push(r.3);
            c.session.push(r.4);
            c.category.push(r.5);
        }
        c
    }

    #[test]
    fn sessions_cut_at_gaps_or_given_ids_and_rates_follow() {
        use EventType::*;
        let day = 86_400 * 1_000_000i64;
        let t0 = 100 * day;
        let rows = [
            // Session 1 (a): three views, cart, purchase.
            (0, t0, ProductView, false, None, Some(0)),
            (0, t0 + 5 * MIN, ProductView, false, None, Some(1)),
            (0, t0 + 10 * MIN, ProductView, false, None, Some(1)),
            (0, t0 + 12 * MIN, AddToCart, false, None, None),
            (0, t0 + 20 * MIN, Purchase, false, None, None),
            // Session 2 (a), 2 h later: cart, exit on shipping.
            (0, t0 + 140 * MIN, AddToCart, false, None, None),
            (0, t0 + 150 * MIN, PageView, true, None, None),
            // Session 3 (a): one event with a given id, spanning nothing.
            (0, t0 + 151 * MIN, PageView, false, Some(7), None),
            // b: three product views, no cart, one session.
            (1, t0, ProductView, false, None, None),
            (1, t0 + MIN, ProductView, false, None, None),
            (1, t0 + 2 * MIN, ProductView, false, None, None),
        ];
        let mut c = clicks(&rows);
        let t = engagement_features(&c, 3, 110, 30, &[Some(99), None, None]);
        assert_eq!(t.int("sessions").unwrap(), [Some(3), Some(1), None]);
        assert_eq!(
            t.float("bounce_rate").unwrap(),
            [Some(1.0 / 3.0), Some(0.0), None]
        );
        assert_eq!(t.float("cart_abandonment_rate").unwrap()[0], Some(0.5));
        assert_eq!(t.float("cart_to_purchase_rate").unwrap()[0], Some(0.5));
        assert_eq!(t.float("price_page_exit_rate").unwrap()[0], Some(1.0 / 3.0));
        assert_eq!(
            t.int("browse_no_buy_sessions").unwrap(),
            [Some(0), Some(1), None]
        );
        assert_eq!(t.float("view_to_cart_rate").unwrap()[0], Some(2.0 / 3.0));
        assert_eq!(t.int("categories_viewed").unwrap()[0], Some(2));
        assert_eq!(
            t.int("visits_since_last_order").unwrap()[..2],
            [Some(3), Some(1)]
        );
        assert_eq!(t.int("days_since_last_visit").unwrap()[0], Some(10));
        // Any row order gives the same table.
        let reversed: Vec<_> = rows.iter().rev().copied().collect();
        c = clicks(&reversed);
        assert_eq!(
            engagement_features(&c, 3, 110, 30, &[Some(99), None, None]),
            t
        );
    }
}
