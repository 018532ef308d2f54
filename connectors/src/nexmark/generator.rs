//! The Nexmark events themselves: one event per event number, computed from nothing but the
//! number and the settings, following the reference generator (Beam's, with the channel and
//! URL of the Flink benchmark's bids) draw for draw.
//!
//! Where the reference draws from an unseeded random source (the four hot URLs and the
//! 10,000 cached channel URLs) Eddy seeds it with the channel's index, so that every run
//! yields the same rows. The Flink benchmark adds the bidder's id offset twice; it is added
//! once, as in Beam. Events are `1,000,000 / event_rate` microseconds apart, as a fraction
//! (as the Flink benchmark has it; Beam rounds the period to whole microseconds, which
//! differs for rates that do not divide 10^6).

use std::sync::OnceLock;

use super::NexmarkConfig;
use crate::java_random::JavaRandom;

/// The person:auction:bid mix, out of every 50 event ids.
pub const PERSON_PROPORTION: u64 = 1;
pub const AUCTION_PROPORTION: u64 = 3;
pub const BID_PROPORTION: u64 = 46;
const PROPORTION_DENOMINATOR: u64 = PERSON_PROPORTION + AUCTION_PROPORTION + BID_PROPORTION;

const FIRST_PERSON_ID: i64 = 1000;
const FIRST_AUCTION_ID: i64 = 1000;
const FIRST_CATEGORY_ID: i64 = 10;
const NUM_CATEGORIES: i32 = 5;
const PERSON_ID_LEAD: i64 = 10;
const AUCTION_ID_LEAD: i64 = 10;
/// Hot sellers, auctions and bidders are the first (bidders: second) of blocks of this many.
const HOT_BLOCK: i64 = 100;
const HOT_CHANNELS_RATIO: i32 = 2;
const CHANNELS_NUMBER: i32 = 10_000;
const MIN_STRING_LENGTH: i32 = 3;

const US_STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];
const US_CITIES: [&str; 10] = [
    "Phoenix",
    "Los Angeles",
    "San Francisco",
    "Boise",
    "Portland",
    "Bend",
    "Redmond",
    "Seattle",
    "Kent",
    "Cheyenne",
];
const FIRST_NAMES: [&str; 11] = [
    "Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter",
];
const LAST_NAMES: [&str; 9] = [
    "Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris",
];
const HOT_CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];

/// Which of the three relations an event id belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    Person,
    Auction,
    Bid,
}

impl EventKind {
    pub fn of(event_id: u64) -> EventKind {
        let rem = event_id % PROPORTION_DENOMINATOR;
        if rem < PERSON_PROPORTION {
            EventKind::Person
        } else if rem < PERSON_PROPORTION + AUCTION_PROPORTION {
            EventKind::Auction
        } else {
            EventKind::Bid
        }
    }
}

pub struct Person {
    pub id: i64,
    pub name: String,
    pub email_address: String,
    pub credit_card: String,
    pub city: &'static str,
    pub state: &'static str,
    pub date_time_ms: i64,
    pub extra: String,
}

pub struct Auction {
    pub id: i64,
    pub item_name: String,
    pub description: String,
    pub initial_bid: i64,
    pub reserve: i64,
    pub date_time_ms: i64,
    pub expires_ms: i64,
    pub seller: i64,
    pub category: i64,
    pub extra: String,
}

pub struct Bid<'a> {
    pub auction: i64,
    pub bidder: i64,
    pub price: i64,
    pub channel: &'a str,
    pub url: &'a str,
    pub date_time_ms: i64,
    pub extra: String,
}

impl NexmarkConfig {
    /// The event id of the `n`-th event (0-based): event numbers are permuted within groups
    /// of `out_of_order_group_size`, so consecutive events arrive out of order.
    pub fn event_id(&self, n: u64) -> u64 {
        let g = self.out_of_order_group_size;
        (n / g) * g + (n.wrapping_mul(953)) % g
    }

    /// The event time (milliseconds since the Unix epoch) of the event with this id.
    pub fn timestamp_ms(&self, event_id: u64) -> i64 {
        let delay_us = 1_000_000.0 / self.event_rate as f64;
        self.base_time_ms + (event_id as f64 * delay_us) as i64 / 1000
    }

    /// The person of an event. Its `extra` padding (drawn last) is left empty unless asked
    /// for: the other fields do not depend on it.
    pub fn person(&self, event_id: u64, with_extra: bool) -> Person {
        let mut random = JavaRandom::new(event_id as i64);
        let id = last_base0_person_id(event_id) + FIRST_PERSON_ID;
        let name = format!(
            "{} {}",
            FIRST_NAMES[random.next_int_below(FIRST_NAMES.len() as i32) as usize],
            LAST_NAMES[random.next_int_below(LAST_NAMES.len() as i32) as usize]
        );
        let email_address = format!(
            "{}@{}.com",
            next_string(&mut random, 7, ' '),
            next_string(&mut random, 5, ' ')
        );
        let mut credit_card = String::with_capacity(19);
        for i in 0..4 {
            if i > 0 {
                credit_card.push(' ');
            }
            credit_card.push_str(&format!("{:04}", random.next_int_below(10_000)));
        }
        let city = US_CITIES[random.next_int_below(US_CITIES.len() as i32) as usize];
        let state = US_STATES[random.next_int_below(US_STATES.len() as i32) as usize];
        let size =
            8 + name.len() + email_address.len() + credit_card.len() + city.len() + state.len();
        let extra = match with_extra {
            true => next_extra(&mut random, size, self.avg_person_bytes),
            false => String::new(),
        };
        Person {
            id,
            name,
            email_address,
            credit_card,
            city,
            state,
            date_time_ms: self.timestamp_ms(event_id),
            extra,
        }
    }

    /// The auction of an event; `extra` as for [`NexmarkConfig::person`].
    pub fn auction(&self, event_id: u64, with_extra: bool) -> Auction {
        let timestamp = self.timestamp_ms(event_id);
        let mut random = JavaRandom::new(event_id as i64);
        let id = last_base0_auction_id(event_id) + FIRST_AUCTION_ID;
        let seller = if random.next_int_below(self.hot_sellers_ratio) > 0 {
            (last_base0_person_id(event_id) / HOT_BLOCK) * HOT_BLOCK
        } else {
            self.next_base0_person_id(event_id, &mut random)
        } + FIRST_PERSON_ID;
        let category = FIRST_CATEGORY_ID + random.next_int_below(NUM_CATEGORIES) as i64;
        let initial_bid = next_price(&mut random);
        // Auctions last, on average, until `num_in_flight_auctions` more have been created.
        let events_for_auctions =
            (self.num_in_flight_auctions * PROPORTION_DENOMINATOR) / AUCTION_PROPORTION;
        let horizon = self.timestamp_ms(event_id + events_for_auctions) - timestamp;
        let expires_ms = timestamp + 1 + next_long(&mut random, (horizon * 2).max(1));
        let item_name = next_string(&mut random, 20, ' ');
        let description = next_string(&mut random, 100, ' ');
        let reserve = initial_bid + next_price(&mut random);
        let size = 8 + item_name.len() + description.len() + 8 + 8 + 8 + 8 + 8;
        let extra = match with_extra {
            true => next_extra(&mut random, size, self.avg_auction_bytes),
            false => String::new(),
        };
        Auction {
            id,
            item_name,
            description,
            initial_bid,
            reserve,
            date_time_ms: timestamp,
            expires_ms,
            seller,
            category,
            extra,
        }
    }

    /// The bid of an event; `extra` as for [`NexmarkConfig::person`].
    pub fn bid(&self, event_id: u64, with_extra: bool) -> Bid<'static> {
        let mut random = JavaRandom::new(event_id as i64);
        let auction = if random.next_int_below(self.hot_auctions_ratio) > 0 {
            (last_base0_auction_id(event_id) / HOT_BLOCK) * HOT_BLOCK
        } else {
            self.next_base0_auction_id(event_id, &mut random)
        } + FIRST_AUCTION_ID;
        let bidder = if random.next_int_below(self.hot_bidders_ratio) > 0 {
            (last_base0_person_id(event_id) / HOT_BLOCK) * HOT_BLOCK + 1
        } else {
            self.next_base0_person_id(event_id, &mut random)
        } + FIRST_PERSON_ID;
        let price = next_price(&mut random);
        let (channel, url) = if random.next_int_below(HOT_CHANNELS_RATIO) > 0 {
            let i = random.next_int_below(HOT_CHANNELS.len() as i32) as usize;
            (HOT_CHANNELS[i], hot_urls()[i].as_str())
        } else {
            let (channel, url) = &channels()[random.next_int_below(CHANNELS_NUMBER) as usize];
            (channel.as_str(), url.as_str())
        };
        let extra = match with_extra {
            true => next_extra(&mut random, 8 + 8 + 8 + 8, self.avg_bid_bytes),
            false => String::new(),
        };
        Bid {
            auction,
            bidder,
            price,
            channel,
            url,
            date_time_ms: self.timestamp_ms(event_id),
            extra,
        }
    }

    /// A person among the active ones, or a few beyond the newest (a bid or auction can
    /// appear to precede its person).
    fn next_base0_person_id(&self, event_id: u64, random: &mut JavaRandom) -> i64 {
        let people = last_base0_person_id(event_id) + 1;
        let active = people.min(self.num_active_people);
        people - active + next_long(random, active + PERSON_ID_LEAD)
    }

    /// An auction likely still in flight, or a few beyond the newest.
    fn next_base0_auction_id(&self, event_id: u64, random: &mut JavaRandom) -> i64 {
        let max = last_base0_auction_id(event_id);
        let min = (max - self.num_in_flight_auctions as i64).max(0);
        min + next_long(random, max - min + 1 + AUCTION_ID_LEAD)
    }
}

/// The (0-based) id of the last person created at or before this event id.
fn last_base0_person_id(event_id: u64) -> i64 {
    let epoch = event_id / PROPORTION_DENOMINATOR;
    let mut offset = event_id % PROPORTION_DENOMINATOR;
    if offset >= PERSON_PROPORTION {
        // An auction or bid: the last person is the epoch's last.
        offset = PERSON_PROPORTION - 1;
    }
    (epoch * PERSON_PROPORTION + offset) as i64
}

/// The (0-based) id of the last auction created at or before this event id.
fn last_base0_auction_id(event_id: u64) -> i64 {
    let mut epoch = (event_id / PROPORTION_DENOMINATOR) as i64;
    let mut offset = (event_id % PROPORTION_DENOMINATOR) as i64;
    let (person, auction) = (PERSON_PROPORTION as i64, AUCTION_PROPORTION as i64);
    if offset < person {
        epoch -= 1;
        offset = auction - 1;
    } else if offset >= person + auction {
        offset = auction - 1;
    } else {
        offset -= person;
    }
    epoch * auction + offset
}

/// Uniform in `[0, n)`, the reference's way (skewed beyond `i32`, as there).
fn next_long(random: &mut JavaRandom, n: i64) -> i64 {
    if n < i32::MAX as i64 {
        random.next_int_below(n as i32) as i64
    } else {
        (random.next_long() % n).abs()
    }
}

/// Log-uniform between 100 and 10^8.
fn next_price(random: &mut JavaRandom) -> i64 {
    (10f64.powf(random.next_double() * 6.0) * 100.0 + 0.5).floor() as i64
}

/// 3 to `max_length - 1` lower-case letters, each one in 13 replaced by `special`, trimmed.
fn next_string(random: &mut JavaRandom, max_length: i32, special: char) -> String {
    let len = MIN_STRING_LENGTH + random.next_int_below(max_length - MIN_STRING_LENGTH);
    let mut s = String::with_capacity(len as usize);
    for _ in 0..len {
        if random.next_int_below(13) == 0 {
            s.push(special);
        } else {
            s.push((b'a' + random.next_int_below(26) as u8) as char);
        }
    }
    s.trim_matches(|c: char| c <= ' ').to_string()
}

/// Exactly `length` characters, six from each random `i32` (as the reference, which lets a
/// negative remainder reach below `'a'`).
fn next_exact_string(random: &mut JavaRandom, length: usize) -> String {
    let mut s = String::with_capacity(length);
    let mut rnd = 0i32;
    let mut left = 0;
    for _ in 0..length {
        if left == 0 {
            rnd = random.next_int();
            left = 6;
        }
        s.push((b'a' as i32 + rnd % 26) as u8 as char);
        rnd /= 26;
        left -= 1;
    }
    s
}

/// Padding that brings the event to `average` bytes on average (+-20%).
fn next_extra(random: &mut JavaRandom, current: usize, average: usize) -> String {
    if current > average {
        return String::new();
    }
    let wanted = (average - current) as i64;
    let delta = (wanted as f64 * 0.2).round() as i64;
    let min = wanted - delta;
    let size = min
        + if delta == 0 {
            0
        } else {
            random.next_int_below((2 * delta) as i32) as i64
        };
    next_exact_string(random, size as usize)
}

fn base_url(random: &mut JavaRandom) -> String {
    format!(
        "https://www.nexmark.com/{}/{}/{}/item.htm?query=1",
        next_string(random, 5, '_'),
        next_string(random, 5, '_'),
        next_string(random, 5, '_')
    )
}

fn hot_urls() -> &'static [String; 4] {
    static URLS: OnceLock<[String; 4]> = OnceLock::new();
    URLS.get_or_init(|| std::array::from_fn(|i| base_url(&mut JavaRandom::new(i as i64))))
}

/// The channel name and URL of each of the 10,000 channels.
fn channels() -> &'static [(String, String)] {
    static CHANNELS: OnceLock<Vec<(String, String)>> = OnceLock::new();
    CHANNELS.get_or_init(|| {
        (0..CHANNELS_NUMBER)
            .map(|n| {
                // Seeded apart from the hot URLs' seeds.
                let mut random = JavaRandom::new(CHANNELS_NUMBER as i64 + n as i64);
                let mut url = base_url(&mut random);
                if random.next_int_below(10) > 0 {
                    // Java's Math.abs, which leaves i32::MIN negative.
                    url.push_str(&format!("&channel_id={}", n.reverse_bits().wrapping_abs()));
                }
                (format!("channel-{n}"), url)
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_mix() {
        assert_eq!(EventKind::of(0), EventKind::Person);
        assert_eq!(EventKind::of(1), EventKind::Auction);
        assert_eq!(EventKind::of(3), EventKind::Auction);
        assert_eq!(EventKind::of(4), EventKind::Bid);
        assert_eq!(EventKind::of(49), EventKind::Bid);
        assert_eq!(EventKind::of(50), EventKind::Person);
        assert_eq!(last_base0_person_id(0), 0);
        assert_eq!(last_base0_person_id(49), 0);
        assert_eq!(last_base0_person_id(50), 1);
        assert_eq!(last_base0_auction_id(1), 0);
        assert_eq!(last_base0_auction_id(3), 2);
        assert_eq!(last_base0_auction_id(10), 2);
        assert_eq!(last_base0_auction_id(51), 3);
        // A person event before any auction points at auction -1, as in the reference.
        assert_eq!(last_base0_auction_id(0), -1);
    }

    #[test]
    fn out_of_order_groups_are_permutations() {
        let config = NexmarkConfig {
            out_of_order_group_size: 10,
            ..NexmarkConfig::default()
        };
        let mut ids: Vec<u64> = (0..10).map(|n| config.event_id(n)).collect();
        assert_ne!(ids, (0..10).collect::<Vec<_>>());
        ids.sort();
        assert_eq!(ids, (0..10).collect::<Vec<_>>());
        let plain = NexmarkConfig::default();
        assert!((0..100).all(|n| plain.event_id(n) == n));
    }

    #[test]
    fn events_are_deterministic_and_in_range() {
        let config = NexmarkConfig::default();
        let mut prices = Vec::new();
        for n in 0..50_000u64 {
            match EventKind::of(n) {
                EventKind::Person => {
                    let p = config.person(n, true);
                    assert_eq!(p.id, (n / 50) as i64 + 1000);
                    assert!(US_STATES.contains(&p.state));
                    assert_eq!(p.credit_card.len(), 19);
                }
                EventKind::Auction => {
                    let a = config.auction(n, true);
                    assert!(a.expires_ms > a.date_time_ms);
                    assert!(a.reserve >= a.initial_bid);
                    assert!((10..15).contains(&a.category));
                    assert!(a.seller >= 1000 && a.seller <= (n / 50) as i64 + 1000 + 10);
                }
                EventKind::Bid => {
                    let b = config.bid(n, true);
                    assert!((100..=100_000_000).contains(&b.price));
                    assert!(b.auction >= 1000);
                    assert!(b.bidder >= 1000 && b.bidder <= (n / 50) as i64 + 1000 + 101);
                    assert!(b.url.starts_with("https://www.nexmark.com/"));
                    prices.push(b.price);
                }
            }
        }
        // Log-uniform: the median price is near 10^5 (100 * 10^3).
        prices.sort();
        let median = prices[prices.len() / 2];
        assert!((50_000..200_000).contains(&median), "median {median}");
        let again = config.bid(4, true);
        let once = config.bid(4, true);
        assert_eq!(
            (again.auction, again.price, again.extra),
            (once.auction, once.price, once.extra)
        );
    }

    #[test]
    fn sizes_average_out() {
        let config = NexmarkConfig::default();
        let bids: Vec<Bid> = (0..5000u64)
            .filter(|&n| EventKind::of(n) == EventKind::Bid)
            .map(|n| config.bid(n, true))
            .collect();
        let avg = bids.iter().map(|b| b.extra.len()).sum::<usize>() / bids.len();
        // 100 bytes on average, 32 of them the numbers: the padding averages 68.
        assert!((64..=72).contains(&avg), "average padding {avg}");
        let hot = bids
            .iter()
            .filter(|b| HOT_CHANNELS.contains(&b.channel))
            .count();
        assert!(
            hot * 10 > bids.len() * 4 && hot * 10 < bids.len() * 6,
            "{hot}"
        );
    }
}
