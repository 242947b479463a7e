//! Mergeable per-customer partial aggregates of orders (docs/design.md §8).
//!
//! A piece of the input (a file, a row group, a chunk) yields one [`OrderPartial`] per customer;
//! merging the pieces' partials in any grouping and any order gives exactly the partials of one
//! pass over everything, so the features finished from them are bit-for-bit the same. That is
//! what lets ingest stream and scale out without touching the feature definitions.
//!
//! Exactness: money is summed in integer micro-units ([`Micros`], amounts rounded to 1e-6 of the
//! currency unit), so addition is associative; everything else is counts and days. A partial
//! keeps one entry per distinct purchase day (what the BTYD summary and the rhythm need), so its
//! size grows with a customer's purchase days, not with rows.

use crate::{Day, Orders};

/// Money in millionths of the currency unit. Sums of amounts within ±1e15 over billions of
/// orders stay far inside `i128`.
pub type Micros = i128;

/// An amount in micro-units (rounded to the nearest millionth).
pub fn to_micros(amount: f64) -> Micros {
    let m = (amount * 1e6).round();
    // Within i64 (amounts below about 9.2 trillion, i.e. all of them), a one-instruction
    // conversion: to i128 it is a call into the runtime, twice per order.
    if m.abs() < 9.0e18 {
        m as i64 as Micros
    } else {
        m as Micros
    }
}

/// Micro-units back to the currency unit.
pub fn from_micros(m: Micros) -> f64 {
    m as f64 / 1e6
}

/// One customer's orders on or before the as-of day, summarized so that pieces merge exactly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderPartial {
    /// Per purchase day, ascending: (day, spend, valid orders that day).
    pub(crate) days: Vec<(Day, Micros, u32)>,
    /// Refunded amounts of all orders.
    pub(crate) refunds: Micros,
    /// Orders of any kind (a customer with only refunds or returns still has some).
    pub(crate) orders: u32,
    /// Purchase orders with a discount.
    pub(crate) discounted: u32,
    /// Sum over purchase orders of discount / (amount + discount), in billionths.
    pub(crate) discount_rate_nanos: i64,
    /// Distinct categories bought (ids of the run's category dictionary), ascending.
    pub(crate) categories: Vec<u32>,
}

/// discount / (amount + discount) in billionths (0 without a discount).
fn discount_rate_nanos(amount: f64, discount: f64) -> i64 {
    let list = amount + discount;
    if discount > 0.0 && list > 0.0 {
        ((discount / list).min(1.0) * 1e9).round() as i64
    } else {
        0
    }
}

/// Union of two ascending id lists.
fn union(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

impl OrderPartial {
    /// Adds one order (`amount`, `discount` and `categories` count only when `is_purchase`).
    pub fn add(
        &mut self,
        day: Day,
        amount: f64,
        refund: f64,
        is_purchase: bool,
        discount: f64,
        categories: &[u32],
    ) {
        self.orders += 1;
        self.refunds += to_micros(refund);
        if !is_purchase {
            return;
        }
        if discount > 0.0 {
            self.discounted += 1;
        }
        self.discount_rate_nanos += discount_rate_nanos(amount, discount);
        let mut sorted = categories.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        self.categories = union(&self.categories, &sorted);
        let spend = to_micros(amount);
        match self.days.binary_search_by_key(&day, |d| d.0) {
            Ok(k) => {
                self.days[k].1 += spend;
                self.days[k].2 += 1;
            }
            Err(k) => self.days.insert(k, (day, spend, 1)),
        }
    }

    /// Folds `other` (the same customer's orders from another piece) into this partial.
    pub fn merge(&mut self, other: &OrderPartial) {
        self.orders += other.orders;
        self.refunds += other.refunds;
        self.discounted += other.discounted;
        self.discount_rate_nanos += other.discount_rate_nanos;
        if !other.categories.is_empty() {
            self.categories = union(&self.categories, &other.categories);
        }
        if other.days.is_empty() {
            return;
        }
        let (x, y) = (&self.days, &other.days);
        let mut merged = Vec::with_capacity(x.len() + y.len());
        let (mut i, mut j) = (0, 0);
        while i < x.len() && j < y.len() {
            if x[i].0 == y[j].0 {
                merged.push((x[i].0, x[i].1 + y[j].1, x[i].2 + y[j].2));
                i += 1;
                j += 1;
            } else if x[i].0 < y[j].0 {
                merged.push(x[i]);
                i += 1;
            } else {
                merged.push(y[j]);
                j += 1;
            }
        }
        merged.extend_from_slice(&x[i..]);
        merged.extend_from_slice(&y[j..]);
        self.days = merged;
    }

    /// True when no order of this customer was seen.
    pub fn is_empty(&self) -> bool {
        self.orders == 0
    }
}

/// Each key's run of positions in `key` (keys below `keys`; a key absent has an empty run), when
/// every key's entries are together (one run per key, the runs in any order); else `None`.
pub(crate) fn runs(key: &[u32], keys: usize) -> Option<Vec<(usize, usize)>> {
    use rayon::prelude::*;
    let head = |i: usize| i == 0 || key[i] != key[i - 1];
    // Where runs start: at most one per key when they are together (counted before any is
    // kept).
    if (0..key.len()).into_par_iter().filter(|&i| head(i)).count() > keys {
        return None;
    }
    let heads: Vec<usize> = (0..key.len())
        .into_par_iter()
        .filter(|&i| head(i))
        .collect();
    let mut runs = vec![(0, 0); keys];
    for (h, &start) in heads.iter().enumerate() {
        let end = heads.get(h + 1).copied().unwrap_or(key.len());
        let run = &mut runs[key[start] as usize];
        if run.1 > 0 {
            return None;
        }
        *run = (start, end);
    }
    Some(runs)
}

/// A stable counting sort of the positions of `key` by key (keys below `keys`; entries equal to
/// [`crate::DROP`] are left out): key `k`'s positions are `perm[starts[k]..starts[k + 1]]`, ascending.
pub(crate) fn counting_sort(key: &[u32], keys: usize) -> (Vec<usize>, Vec<u32>) {
    let kept = || key.iter().enumerate().filter(|(_, &k)| k != crate::DROP);
    let mut starts = vec![0usize; keys + 1];
    for (_, &k) in kept() {
        starts[k as usize + 1] += 1;
    }
    for k in 0..keys {
        starts[k + 1] += starts[k];
    }
    let mut fill = starts.clone();
    let mut perm = vec![0u32; starts[keys]];
    for (i, &k) in kept() {
        perm[fill[k as usize]] = i as u32;
        fill[k as usize] += 1;
    }
    (starts, perm)
}

/// Where each customer's orders are.
pub(crate) enum ByCustomer {
    /// Each customer's orders are together: customer `c`'s are `runs[c]` (a start and an end;
    /// the runs in key order, as [`Orders::into_indexed`] groups them, or in any other, as an
    /// export sorted by integer id leaves them).
    Runs(Vec<(usize, usize)>),
    /// Customers interleaved: customer `c`'s orders are `perm[starts[c]..starts[c + 1]]`, a
    /// stable counting sort's permutation.
    Sorted { starts: Vec<usize>, perm: Vec<u32> },
}

impl ByCustomer {
    pub(crate) fn of(orders: &Orders, customers: usize) -> Self {
        match runs(&orders.customer, customers) {
            Some(runs) => ByCustomer::Runs(runs),
            None => {
                let (starts, perm) = counting_sort(&orders.customer, customers);
                ByCustomer::Sorted { starts, perm }
            }
        }
    }

    /// Customer `c`'s partial: its orders on or before `as_of`.
    pub(crate) fn partial(&self, orders: &Orders, c: usize, as_of: Day) -> OrderPartial {
        let mut part = OrderPartial::default();
        self.partial_into(orders, c, as_of, &mut part);
        part
    }

    /// [`ByCustomer::partial`] into `part`, whose buffers are reused (a caller finishing one
    /// customer after another allocates nothing per customer).
    pub(crate) fn partial_into(
        &self,
        orders: &Orders,
        c: usize,
        as_of: Day,
        part: &mut OrderPartial,
    ) {
        let (range, perm) = match self {
            ByCustomer::Runs(runs) => (runs[c].0..runs[c].1, None),
            ByCustomer::Sorted { starts, perm } => (starts[c]..starts[c + 1], Some(perm)),
        };
        let at = |j: usize| perm.map_or(j, |p| p[j] as usize);
        let (mut days, mut categories) = (
            std::mem::take(&mut part.days),
            std::mem::take(&mut part.categories),
        );
        days.clear();
        categories.clear();
        *part = OrderPartial {
            days,
            categories,
            ..OrderPartial::default()
        };
        part.days.reserve(range.len());
        let has_discounts = orders.has_discounts();
        for i in range.map(at).filter(|&i| orders.day[i] <= as_of) {
            part.orders += 1;
            part.refunds += to_micros(orders.refund[i]);
            if orders.is_purchase[i] {
                part.days
                    .push((orders.day[i], to_micros(orders.amount[i]), 1));
                if has_discounts {
                    let d = orders.discount[i];
                    part.discounted += u32::from(d > 0.0);
                    part.discount_rate_nanos += discount_rate_nanos(orders.amount[i], d);
                }
                part.categories.extend_from_slice(orders.categories(i));
            }
        }
        part.categories.sort_unstable();
        part.categories.dedup();
        // One entry per day: sort, then fold each run of equal days into its first.
        part.days.sort_unstable_by_key(|d| d.0);
        part.days.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                kept.1 += later.1;
                kept.2 += later.2;
            }
            same
        });
    }
}

/// The partials of every customer of an index (one per position).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderPartials {
    pub(crate) parts: Vec<OrderPartial>,
    /// Whether the orders had a discount column and a category column: without one, the
    /// features that need it are null, not 0.
    pub(crate) has_discounts: bool,
    pub(crate) has_categories: bool,
}

impl OrderPartials {
    /// Partials of `orders` (keyed by an index of `customers`, see [`Orders::into_indexed`]) on
    /// or before `as_of`: each customer's orders (a range of orders grouped by customer, else
    /// found by a counting sort), then each customer's partial in parallel.
    pub fn from_orders(orders: &Orders, customers: usize, as_of: Day) -> Self {
        use rayon::prelude::*;
        let by = ByCustomer::of(orders, customers);
        OrderPartials {
            parts: (0..customers)
                .into_par_iter()
                .map(|c| by.partial(orders, c, as_of))
                .collect(),
            has_discounts: orders.has_discounts(),
            has_categories: orders.has_categories(),
        }
    }

    /// Folds the partials of another piece over the same index into these.
    ///
    /// # Panics
    /// When the two are over indexes of different sizes (a bug in the caller).
    pub fn merge(&mut self, other: &OrderPartials) {
        assert_eq!(
            self.parts.len(),
            other.parts.len(),
            "partials of different indexes"
        );
        for (a, b) in self.parts.iter_mut().zip(&other.parts) {
            a.merge(b);
        }
        self.has_discounts |= other.has_discounts;
        self.has_categories |= other.has_categories;
    }

    pub fn len(&self) -> usize {
        self.parts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    pub fn get(&self, customer: usize) -> &OrderPartial {
        &self.parts[customer]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Micro-units through i64 where they fit, through i128 past it: the same integers as a
    /// direct conversion, at the ends of the amount range too.
    #[test]
    fn micros_are_the_rounded_millionths() {
        for a in [
            0.0, -0.0, 0.4999994, 0.0000005, -0.0000005, 1.23, -19.99, 1e12, 9.2e12, 9.3e12,
            -9.3e12, 1e15, -1e15,
        ] {
            assert_eq!(to_micros(a), (a * 1e6).round() as i128, "{a}");
        }
        assert_eq!(to_micros(1e15), 1_000_000_000_000_000_000_000);
        assert_eq!(to_micros(-19.99), -19_990_000);
    }
    use crate::{compute, features, CustomerIndex};
    use proptest::prelude::*;

    /// Orders of a few customers over a few days, with refunds and non-purchases.
    type OrderRow = (u8, Day, f64, f64, bool, f64, Vec<u32>);

    fn orders_strategy() -> impl Strategy<Value = Vec<OrderRow>> {
        proptest::collection::vec(
            (
                0u8..6,
                0i32..40,
                (0u32..100_000).prop_map(|c| f64::from(c) / 100.0),
                prop_oneof![Just(0.0), (1u32..5000).prop_map(|c| f64::from(c) / 100.0)],
                prop::bool::weighted(0.8),
                prop_oneof![Just(0.0), (1u32..2000).prop_map(|c| f64::from(c) / 100.0)],
                proptest::collection::vec(0u32..5, 0..3),
            ),
            0..60,
        )
    }

    fn keyed(rows: &[OrderRow], index: &CustomerIndex) -> Orders {
        let mut o = Orders {
            customer_ids: index.ids().to_vec(),
            category_names: (0..5).map(|c| format!("cat{c}")).collect(),
            category_start: vec![0],
            discount_column: true,
            ..Default::default()
        };
        for r in rows {
            o.customer
                .push(index.position(&format!("c{}", r.0)).unwrap_or_default());
            o.day.push(r.1);
            o.amount.push(r.2);
            o.refund.push(r.3);
            o.is_purchase.push(r.4);
            o.discount.push(r.5);
            let mut cats = r.6.clone();
            cats.sort_unstable();
            cats.dedup();
            o.category_ids.extend(cats);
            o.category_start.push(o.category_ids.len() as u32);
        }
        o
    }

    proptest! {
        /// Any split of the orders into pieces, merged in any order, finishes to the very same
        /// features as one pass over all of them.
        #[test]
        fn pieces_merge_exactly(rows in orders_strategy(), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..4), reverse in any::<bool>()) {
            let index = CustomerIndex::new((0..6).map(|c| format!("c{c}")));
            let as_of = 35;
            let whole = compute(&keyed(&rows, &index), index.len(), as_of);
            let mut bounds: Vec<usize> = cuts.iter().map(|c| c.index(rows.len() + 1)).collect();
            bounds.push(0);
            bounds.push(rows.len());
            bounds.sort_unstable();
            let mut pieces: Vec<OrderPartials> = bounds
                .windows(2)
                .map(|w| OrderPartials::from_orders(&keyed(&rows[w[0]..w[1]], &index), index.len(), as_of))
                .collect();
            if reverse {
                pieces.reverse();
            }
            let mut merged = pieces.remove(0);
            for p in &pieces {
                merged.merge(p);
            }
            prop_assert_eq!(&merged, &OrderPartials::from_orders(&keyed(&rows, &index), index.len(), as_of));
            prop_assert_eq!(features(&merged, as_of), whole);
        }

        /// Adding orders one at a time (a stream) gives the batch partial.
        #[test]
        fn streaming_adds_equal_the_batch(rows in orders_strategy()) {
            let index = CustomerIndex::new((0..6).map(|c| format!("c{c}")));
            let batch = OrderPartials::from_orders(&keyed(&rows, &index), index.len(), 100);
            let mut streamed = vec![OrderPartial::default(); index.len()];
            for r in &rows {
                let c = index.position(&format!("c{}", r.0)).unwrap_or_default() as usize;
                streamed[c].add(r.1, r.2, r.3, r.4, r.5, &r.6);
            }
            prop_assert_eq!(batch.parts, streamed);
            prop_assert!(batch.has_discounts && batch.has_categories);
        }
    }

    #[test]
    fn money_sums_are_exact_decimals() {
        let mut p = OrderPartial::default();
        p.add(1, 0.1, 0.0, true, 0.0, &[]);
        p.add(1, 0.2, 0.0, true, 0.0, &[]);
        assert_eq!(from_micros(p.days[0].1), 0.3);
        assert_eq!(p.days[0].2, 2);
    }
}
