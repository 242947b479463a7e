//! The clickstream contract (docs/design.md §2) and engagement features from it (docs/design.md §3).
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
//! Mergeable: [`ClickPartials`] summarize a piece of the events per customer by session
//! fragments; pieces merge exactly (property-tested), so sessionizing needs a customer's
//! sessions in memory, not their events. The input crate folds each chunk of a file (a Parquet
//! row group) into them as it reads, keyed by its own customer and visitor dictionaries.

use rayon::prelude::*;

use crate::{Day, FeatureTable, Values};

/// Canonical event types; anything else is `Other` (kept and counted).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
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

/// A piece of validated events, columnar, keyed by an integer `customer` key (a customer or a
/// visitor of the input's dictionaries, or a position of the customer index). The input crate
/// builds one per chunk of a file and folds it into [`ClickPartials`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Clicks {
    pub customer: Vec<u32>,
    /// Event time, µs since the epoch (UTC).
    pub micros: Vec<i64>,
    pub event: Vec<EventType>,
    /// The event is on a price, shipping or payment page.
    pub price_page: Vec<bool>,
    /// Given session id (an index into a dictionary of the input's session ids), if any.
    pub session: Vec<Option<u32>>,
    /// Category (an index into a dictionary of the input's categories), if any.
    pub category: Vec<Option<u32>>,
}

impl Clicks {
    pub fn len(&self) -> usize {
        self.customer.len()
    }

    pub fn is_empty(&self) -> bool {
        self.customer.is_empty()
    }

    /// Forgets every event, keeping the buffers (one piece after another).
    pub fn clear(&mut self) {
        self.customer.clear();
        self.micros.clear();
        self.event.clear();
        self.price_page.clear();
        self.session.clear();
        self.category.clear();
    }

    pub fn push(
        &mut self,
        key: u32,
        micros: i64,
        event: EventType,
        price_page: bool,
        session: Option<u32>,
        category: Option<u32>,
    ) {
        self.customer.push(key);
        self.micros.push(micros);
        self.event.push(event);
        self.price_page.push(price_page);
        self.session.push(session);
        self.category.push(category);
    }
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// The day of a timestamp in µs since the epoch.
pub fn day_of(micros: i64) -> Day {
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

/// A piece of one session: a run of a customer's events (from one piece of the input) with no
/// gap longer than the session gap, or the events of one given session id. 32 bytes: a
/// customer's partial holds one per session, so this is most of the clickstream's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Fragment {
    start: i64,
    end: i64,
    events: u32,
    views: u32,
    carts: u32,
    /// The last event's type and whether it is on a price page: of the events at `end`, the
    /// greatest, so that ties at one instant resolve the same way whatever the input order.
    last: (EventType, bool),
    purchase: bool,
}

impl Fragment {
    fn of(clicks: &Clicks, i: usize) -> Self {
        let e = clicks.event[i];
        Fragment {
            start: clicks.micros[i],
            end: clicks.micros[i],
            events: 1,
            views: u32::from(e == EventType::ProductView),
            carts: u32::from(e == EventType::AddToCart),
            last: (e, clicks.price_page[i]),
            purchase: e == EventType::Purchase,
        }
    }

    /// Joins `o` into this fragment; commutative and associative, so any grouping of the same
    /// events gives the same fragment.
    fn absorb(&mut self, o: &Fragment) {
        self.last = match self.end.cmp(&o.end) {
            std::cmp::Ordering::Less => o.last,
            std::cmp::Ordering::Greater => self.last,
            std::cmp::Ordering::Equal => self.last.max(o.last),
        };
        self.start = self.start.min(o.start);
        self.end = self.end.max(o.end);
        self.events += o.events;
        self.views += o.views;
        self.carts += o.carts;
        self.purchase |= o.purchase;
    }
}

/// One customer's clicks summarized so that pieces merge exactly (docs/design.md §8): session fragments
/// (a piece's gap-cut runs, coalesced on merge when they overlap or lie within the gap of each
/// other — exactly the sessions of all events together), given-id sessions keyed by id, and the
/// categories seen. Its size grows with sessions, not events.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClickPartial {
    /// Gap-cut session fragments, sorted by start, already coalesced.
    fragments: Vec<Fragment>,
    /// Sessions with a given id (an index of the input's session-id dictionary).
    given: std::collections::BTreeMap<u32, Fragment>,
    /// Distinct categories of the events, ascending.
    categories: Vec<u32>,
}

impl ClickPartial {
    /// The partial of one customer's events (`idx` into `clicks`, any order).
    fn of(clicks: &Clicks, idx: &[u32], gap: i64) -> Self {
        let mut p = ClickPartial::default();
        let mut free: Vec<Fragment> = Vec::with_capacity(idx.len());
        for &i in idx {
            let i = i as usize;
            let f = Fragment::of(clicks, i);
            match clicks.session[i] {
                Some(s) => {
                    p.given.entry(s).and_modify(|g| g.absorb(&f)).or_insert(f);
                }
                None => free.push(f),
            }
            if let Some(c) = clicks.category[i] {
                p.categories.push(c);
            }
        }
        p.categories.sort_unstable();
        p.categories.dedup();
        free.sort_unstable_by_key(|f| f.start);
        coalesce_in_place(&mut free, gap);
        p.fragments = free;
        p
    }

    pub fn is_empty(&self) -> bool {
        self.fragments.is_empty() && self.given.is_empty()
    }

    /// Events summarized.
    pub fn events(&self) -> u64 {
        self.sessions().map(|s| u64::from(s.events)).sum()
    }

    /// Folds another piece's partial of the same customer into this one.
    pub fn merge(&mut self, other: &ClickPartial, gap: i64) {
        self.merge_owned(other.clone(), gap);
    }

    /// [`ClickPartial::merge`], taking the other partial's buffers when this one is empty.
    pub fn merge_owned(&mut self, other: ClickPartial, gap: i64) {
        if self.is_empty() && self.categories.is_empty() {
            *self = other;
            return;
        }
        if !other.fragments.is_empty() {
            let mine = std::mem::take(&mut self.fragments);
            let appends = mine
                .last()
                .is_none_or(|l| other.fragments[0].start > l.end + gap);
            self.fragments = if appends {
                let mut all = mine;
                all.extend_from_slice(&other.fragments);
                all
            } else {
                let mut all = merge_by_start(&mine, &other.fragments);
                coalesce_in_place(&mut all, gap);
                all
            };
        }
        for (id, f) in other.given {
            self.given
                .entry(id)
                .and_modify(|g| g.absorb(&f))
                .or_insert(f);
        }
        if !other.categories.is_empty() {
            let mut cats = std::mem::take(&mut self.categories);
            cats.extend_from_slice(&other.categories);
            cats.sort_unstable();
            cats.dedup();
            self.categories = cats;
        }
    }

    /// The customer's sessions (given-id ones and gap-cut ones).
    fn sessions(&self) -> impl Iterator<Item = &Fragment> {
        self.given.values().chain(&self.fragments)
    }
}

/// Two start-sorted lists as one start-sorted list.
fn merge_by_start(a: &[Fragment], b: &[Fragment]) -> Vec<Fragment> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i].start <= b[j].start {
            out.push(a[i]);
            i += 1;
        } else {
            out.push(b[j]);
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// Joins every start-sorted fragment that starts within `gap` of the end of the session being
/// built: the gap-cut sessions of all their events together.
fn coalesce_in_place(fragments: &mut Vec<Fragment>, gap: i64) {
    let mut w = 0;
    for r in 0..fragments.len() {
        let f = fragments[r];
        if w > 0 && f.start <= fragments[w - 1].end + gap {
            fragments[w - 1].absorb(&f);
        } else {
            fragments[w] = f;
            w += 1;
        }
    }
    fragments.truncate(w);
}

/// Click partials keyed by an integer key (the input's customers or visitors while reading;
/// positions of the customer index once keyed by [`ClickPartials::rekey`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClickPartials {
    parts: Vec<ClickPartial>,
    gap: i64,
}

impl ClickPartials {
    /// No partials yet; sessions cut at `session_gap_minutes`.
    pub fn new(session_gap_minutes: u32) -> Self {
        ClickPartials {
            parts: Vec::new(),
            gap: i64::from(session_gap_minutes) * 60_000_000,
        }
    }

    /// Partials of the events on or before `as_of` for keys `0..customers`.
    pub fn from_clicks(
        clicks: &Clicks,
        customers: usize,
        as_of: Day,
        session_gap_minutes: u32,
    ) -> Self {
        let mut p = ClickPartials::new(session_gap_minutes);
        p.parts.resize_with(customers, ClickPartial::default);
        p.add(clicks, as_of);
        p
    }

    /// Keys held (one past the greatest key with events).
    pub fn len(&self) -> usize {
        self.parts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// The partial of `key` (empty past the end).
    pub fn get(&self, key: usize) -> Option<&ClickPartial> {
        self.parts.get(key)
    }

    /// Folds a piece of events (`piece.customer` = key) on or before `as_of` into the partials;
    /// a key past the end grows them. Only the keys the piece names are touched, so a piece
    /// costs its own events, not the number of keys.
    pub fn add(&mut self, piece: &Clicks, as_of: Day) {
        let mut idx: Vec<u32> = (0..piece.len() as u32)
            .filter(|&i| day_of(piece.micros[i as usize]) <= as_of)
            .collect();
        idx.par_sort_unstable_by_key(|&i| piece.customer[i as usize]);
        let groups: Vec<&[u32]> = idx
            .chunk_by(|a, b| piece.customer[*a as usize] == piece.customer[*b as usize])
            .collect();
        let gap = self.gap;
        let built: Vec<(usize, ClickPartial)> = groups
            .par_iter()
            .map(|g| {
                (
                    piece.customer[g[0] as usize] as usize,
                    ClickPartial::of(piece, g, gap),
                )
            })
            .collect();
        if let Some((last, _)) = built.last() {
            if *last >= self.parts.len() {
                self.parts.resize_with(last + 1, ClickPartial::default);
            }
        }
        for (k, p) in built {
            self.parts[k].merge_owned(p, gap);
        }
    }

    /// Gives back the spare capacity of every partial (once reading is done).
    pub fn shrink_to_fit(&mut self) {
        self.parts.par_iter_mut().for_each(|p| {
            p.fragments.shrink_to_fit();
            p.categories.shrink_to_fit();
        });
        self.parts.shrink_to_fit();
    }

    /// The partials of `keys`, taken out (left empty here), under keys `0..keys.len()`: e.g.
    /// one partition's customers.
    pub fn take_keys(&mut self, keys: &[usize]) -> ClickPartials {
        ClickPartials {
            parts: keys.iter().map(|&k| self.take(k)).collect(),
            gap: self.gap,
        }
    }

    /// Every non-empty partial with its key, ascending, the partials moved out.
    pub fn into_keyed(self) -> impl Iterator<Item = (usize, ClickPartial)> {
        self.parts
            .into_iter()
            .enumerate()
            .filter(|(_, p)| !p.is_empty())
    }

    /// Takes the partial of `key` out (leaving it empty).
    pub fn take(&mut self, key: usize) -> ClickPartial {
        self.parts
            .get_mut(key)
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Folds `partial` (another key's, e.g. a visitor's) into the partial of `key`.
    pub fn absorb(&mut self, key: usize, partial: ClickPartial) {
        if key >= self.parts.len() {
            self.parts.resize_with(key + 1, ClickPartial::default);
        }
        self.parts[key].merge_owned(partial, self.gap);
    }

    /// The same partials under new keys: `at[key]` is the key's position in a set of `len`
    /// keys (a customer index); keys without a position are dropped.
    pub fn rekey(self, at: &[Option<u32>], len: usize) -> ClickPartials {
        let mut parts = Vec::with_capacity(len);
        parts.resize_with(len, ClickPartial::default);
        for (k, p) in self.parts.into_iter().enumerate() {
            if let Some(Some(pos)) = at.get(k) {
                parts[*pos as usize] = p;
            }
        }
        ClickPartials {
            parts,
            gap: self.gap,
        }
    }

    /// Folds the partials of another piece over the same keys into these.
    pub fn merge(&mut self, other: &ClickPartials) {
        if other.parts.len() > self.parts.len() {
            self.parts
                .resize_with(other.parts.len(), ClickPartial::default);
        }
        let gap = self.gap;
        self.parts
            .par_iter_mut()
            .zip(&other.parts)
            .for_each(|(a, b)| a.merge(b, gap));
    }
}
/// One customer's engagement from their (merged) partial.
fn engagement(p: &ClickPartial, as_of: Day) -> Option<Engagement> {
    let mut e = Engagement {
        categories: p.categories.len() as i64,
        ..Engagement::default()
    };
    let mut last = None;
    for s in p.sessions() {
        let start = day_of(s.start);
        e.sessions += 1;
        e.events += i64::from(s.events);
        e.session_days.push(start);
        last = last.max(Some(s.end));
        if as_of - start < 30 {
            e.sessions_30d += 1;
        }
        if as_of - start < 90 {
            e.sessions_90d += 1;
        }
        if s.events == 1 {
            e.bounces += 1;
        }
        e.product_views += i64::from(s.views);
        e.add_to_carts += i64::from(s.carts);
        if s.carts > 0 {
            e.cart_sessions += 1;
            if s.purchase {
                e.cart_purchase_sessions += 1;
            }
        }
        if s.last.1 && !s.purchase {
            e.price_exits += 1;
        }
        if s.views >= 3 && s.carts == 0 {
            e.browse_no_buy += 1;
        }
    }
    e.last_day = day_of(last?);
    Some(e)
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
    let partials = ClickPartials::from_clicks(clicks, customers, as_of, session_gap_minutes);
    engagement_from_partials(&partials, as_of, last_order_day)
}

/// Engagement columns from merged click partials (see [`ClickPartials::merge`]).
pub fn engagement_from_partials(
    partials: &ClickPartials,
    as_of: Day,
    last_order_day: &[Option<Day>],
) -> FeatureTable {
    let customers = partials.parts.len();
    let rows: Vec<Option<Engagement>> = partials
        .parts
        .par_iter()
        .map(|p| engagement(p, as_of))
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
        Values::Int(since.into()),
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
        let mut c = Clicks::default();
        for r in rows {
            c.push(r.0, r.1, r.2, r.3, r.4, r.5);
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
        assert_eq!(
            t.int("sessions").unwrap().to_vec(),
            [Some(3), Some(1), None]
        );
        assert_eq!(
            t.float("bounce_rate").unwrap().to_vec(),
            [Some(1.0 / 3.0), Some(0.0), None]
        );
        assert_eq!(t.float("cart_abandonment_rate").unwrap().get(0), Some(0.5));
        assert_eq!(t.float("cart_to_purchase_rate").unwrap().get(0), Some(0.5));
        assert_eq!(
            t.float("price_page_exit_rate").unwrap().get(0),
            Some(1.0 / 3.0)
        );
        assert_eq!(
            t.int("browse_no_buy_sessions").unwrap().to_vec(),
            [Some(0), Some(1), None]
        );
        assert_eq!(
            t.float("view_to_cart_rate").unwrap().get(0),
            Some(2.0 / 3.0)
        );
        assert_eq!(t.int("categories_viewed").unwrap().get(0), Some(2));
        assert_eq!(
            t.int("visits_since_last_order").unwrap().to_vec()[..2],
            [Some(3), Some(1)]
        );
        assert_eq!(t.int("days_since_last_visit").unwrap().get(0), Some(10));
        // Any row order gives the same table.
        let reversed: Vec<_> = rows.iter().rev().copied().collect();
        c = clicks(&reversed);
        assert_eq!(
            engagement_features(&c, 3, 110, 30, &[Some(99), None, None]),
            t
        );
    }

    use proptest::prelude::*;

    fn event_strategy() -> impl Strategy<Value = Vec<Event>> {
        let event = prop_oneof![
            Just(EventType::PageView),
            Just(EventType::ProductView),
            Just(EventType::AddToCart),
            Just(EventType::Purchase),
        ];
        proptest::collection::vec(
            (
                0u32..2,
                // Minutes within a few days, so gaps fall on both sides of 30 minutes.
                (0i64..6000).prop_map(|m| 100 * 86_400 * 1_000_000 + m * MIN),
                event,
                any::<bool>(),
                prop_oneof![4 => Just(None), 1 => (0u32..3).prop_map(Some)],
                prop_oneof![Just(None), (0u32..2).prop_map(Some)],
            ),
            0..50,
        )
    }

    proptest! {
        /// Any split of the events into pieces, merged in any order, gives the engagement of
        /// all events at once: sessions that span pieces are joined exactly.
        #[test]
        fn pieces_merge_into_the_same_sessions(rows in event_strategy(), owner in proptest::collection::vec(0usize..3, 50), reverse in any::<bool>()) {
            let whole = clicks(&rows);
            let last_order = [Some(100), None];
            let want = engagement_features(&whole, 2, 110, 30, &last_order);
            let mut pieces: Vec<ClickPartials> = (0..3)
                .map(|k| {
                    let mine: Vec<Event> = rows
                        .iter()
                        .zip(&owner)
                        .filter(|(_, o)| **o == k)
                        .map(|(r, _)| *r)
                        .collect();
                    ClickPartials::from_clicks(&clicks(&mine), 2, 110, 30)
                })
                .collect();
            if reverse {
                pieces.reverse();
            }
            let mut merged = pieces.remove(0);
            for p in &pieces {
                merged.merge(p);
            }
            prop_assert_eq!(&merged, &ClickPartials::from_clicks(&whole, 2, 110, 30));
            prop_assert_eq!(engagement_from_partials(&merged, 110, &last_order), want);
        }
    }
}
