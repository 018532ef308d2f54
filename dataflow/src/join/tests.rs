//! The join operator's unit tests.

use super::*;
use crate::testing::{ApplyNow, checkpoint_writes, delta, schema, sorted};
use datafusion::physical_expr::expressions::Column;

fn join() -> Join {
    let out = schema(&["uid:Int64", "url:Utf8", "id:Int64", "plan:Utf8"]);
    Join::new(
        vec![Arc::new(Column::new("uid", 0))],
        vec![Arc::new(Column::new("id", 0))],
        None,
        false,
        2,
        out,
    )
}

const CLICKS: &[&str] = &["uid:Int64", "url:Utf8"];
const USERS: &[&str] = &["id:Int64", "plan:Utf8"];

/// Expected rows, in the order [`sorted`] gives.
fn s(rows: &[(i64, &str)]) -> Vec<(i64, String)> {
    let mut rows: Vec<(i64, String)> = rows.iter().map(|(w, r)| (*w, r.to_string())).collect();
    rows.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
    rows
}

#[test]
fn both_sides_changing_in_one_epoch_join_once() {
    let mut j = join();
    let out = j
        .apply_now(&[
            delta(CLICKS, &[(1, "1|/a"), (1, "2|/b")]),
            delta(USERS, &[(1, "1|free")]),
        ])
        .unwrap();
    assert_eq!(sorted(&out), s(&[(1, "1|/a|1|free")]));
    let out = j
        .apply_now(&[delta(CLICKS, &[(1, "1|/c")]), delta(USERS, &[])])
        .unwrap();
    assert_eq!(sorted(&out), s(&[(1, "1|/c|1|free")]));
}

#[test]
fn an_update_on_one_side_retracts_and_reinserts() {
    let mut j = join();
    j.apply_now(&[
        delta(CLICKS, &[(1, "1|/a"), (1, "1|/b")]),
        delta(USERS, &[(1, "1|free")]),
    ])
    .unwrap();
    let out = j
        .apply_now(&[
            delta(CLICKS, &[]),
            delta(USERS, &[(-1, "1|free"), (1, "1|pro")]),
        ])
        .unwrap();
    assert_eq!(
        sorted(&out),
        s(&[
            (-1, "1|/a|1|free"),
            (1, "1|/a|1|pro"),
            (-1, "1|/b|1|free"),
            (1, "1|/b|1|pro")
        ])
    );
}

fn join_of(kind: JoinKind) -> Join {
    let out = match kind {
        JoinKind::LeftSemi | JoinKind::LeftAnti => schema(CLICKS),
        JoinKind::RightSemi | JoinKind::RightAnti => schema(USERS),
        _ => schema(&["uid:Int64", "url:Utf8", "id:Int64", "plan:Utf8"]),
    };
    Join::with_kind(
        kind,
        vec![Arc::new(Column::new("uid", 0))],
        vec![Arc::new(Column::new("id", 0))],
        None,
        false,
        (2, 2),
        schema(&["uid:Int64", "url:Utf8", "id:Int64", "plan:Utf8"]),
        out,
    )
}

#[test]
fn a_left_join_pads_until_a_match_comes_and_after_it_goes() {
    let mut j = join_of(JoinKind::Left);
    let out = j
        .apply_now(&[
            delta(CLICKS, &[(1, "1|/a"), (1, "2|/b"), (1, "NULL|/c")]),
            delta(USERS, &[(1, "1|free")]),
        ])
        .unwrap();
    assert_eq!(
        sorted(&out),
        s(&[
            (1, "1|/a|1|free"),
            (1, "2|/b|NULL|NULL"),
            (1, "NULL|/c|NULL|NULL")
        ])
    );
    // User 2 arrives: its click is matched now; a new click of user 2 joins at once.
    let out = j
        .apply_now(&[delta(CLICKS, &[(1, "2|/d")]), delta(USERS, &[(1, "2|pro")])])
        .unwrap();
    assert_eq!(
        sorted(&out),
        s(&[(-1, "2|/b|NULL|NULL"), (1, "2|/b|2|pro"), (1, "2|/d|2|pro")])
    );
    // User 1 goes, and a click of user 1 goes in the same epoch.
    let out = j
        .apply_now(&[
            delta(CLICKS, &[(-1, "1|/a")]),
            delta(USERS, &[(-1, "1|free")]),
        ])
        .unwrap();
    assert_eq!(sorted(&out), s(&[(-1, "1|/a|1|free")]));
    // An update of user 2 keeps its clicks matched: no padding flickers.
    let out = j
        .apply_now(&[
            delta(CLICKS, &[]),
            delta(USERS, &[(-1, "2|pro"), (1, "2|team")]),
        ])
        .unwrap();
    assert_eq!(
        sorted(&out),
        s(&[
            (-1, "2|/b|2|pro"),
            (1, "2|/b|2|team"),
            (-1, "2|/d|2|pro"),
            (1, "2|/d|2|team")
        ])
    );
}

#[test]
fn a_full_join_pads_both_sides() {
    let mut j = join_of(JoinKind::Full);
    let out = j
        .apply_now(&[delta(CLICKS, &[(1, "1|/a")]), delta(USERS, &[(1, "2|pro")])])
        .unwrap();
    assert_eq!(
        sorted(&out),
        s(&[(1, "1|/a|NULL|NULL"), (1, "NULL|NULL|2|pro")])
    );
    let out = j
        .apply_now(&[delta(CLICKS, &[(2, "2|/b")]), delta(USERS, &[])])
        .unwrap();
    assert_eq!(
        sorted(&out),
        s(&[(-1, "NULL|NULL|2|pro"), (2, "2|/b|2|pro")])
    );
}

#[test]
fn semi_and_anti_joins_split_a_side_by_whether_it_has_a_match() {
    let mut semi = join_of(JoinKind::LeftSemi);
    let mut anti = join_of(JoinKind::LeftAnti);
    let clicks = [(1, "1|/a"), (1, "1|/a"), (1, "2|/b")];
    let users = [(1, "1|free"), (1, "1|pro")];
    for (j, expected) in [
        (&mut semi, s(&[(2, "1|/a")])),
        (&mut anti, s(&[(1, "2|/b")])),
    ] {
        let out = j
            .apply_now(&[delta(CLICKS, &clicks), delta(USERS, &users)])
            .unwrap();
        assert_eq!(sorted(&out), expected);
    }
    // One of user 1's two rows goes: still a match. Then the other: no match.
    for step in ["1|free", "1|pro"] {
        let gone = [(-1, step)];
        let a = semi
            .apply_now(&[delta(CLICKS, &[]), delta(USERS, &gone)])
            .unwrap();
        let b = anti
            .apply_now(&[delta(CLICKS, &[]), delta(USERS, &gone)])
            .unwrap();
        if step == "1|free" {
            assert!(sorted(&a).is_empty() && sorted(&b).is_empty());
        } else {
            assert_eq!(sorted(&a), s(&[(-2, "1|/a")]));
            assert_eq!(sorted(&b), s(&[(2, "1|/a")]));
        }
    }
    let mut right = join_of(JoinKind::RightAnti);
    let out = right
        .apply_now(&[
            delta(CLICKS, &clicks),
            delta(USERS, &[(1, "3|x"), (1, "1|y")]),
        ])
        .unwrap();
    assert_eq!(sorted(&out), s(&[(1, "3|x")]));
}

#[test]
fn null_keys_never_match() {
    let mut j = join();
    let out = j
        .apply_now(&[
            delta(CLICKS, &[(1, "NULL|/a")]),
            delta(USERS, &[(1, "NULL|x")]),
        ])
        .unwrap();
    assert!(out.is_empty());
    assert_eq!(j.state_rows(), 0);
}

#[test]
fn a_checkpoint_puts_rows_new_to_a_side_as_new_and_skips_rows_that_came_and_went() {
    let mut flow = crate::Dataflow::default();
    flow.push(
        Box::new(join()),
        vec![
            crate::Input::Source {
                relation: 1,
                schema: schema(CLICKS),
            },
            crate::Input::Source {
                relation: 2,
                schema: schema(USERS),
            },
        ],
    );
    let mut epoch = |clicks: &[(i64, &str)], users: &[(i64, &str)]| {
        let changes =
            std::collections::HashMap::from([(1, delta(CLICKS, clicks)), (2, delta(USERS, users))]);
        flow.apply(&changes, &EpochContext::default()).unwrap();
        checkpoint_writes(&mut flow)
    };
    assert_eq!(epoch(&[(1, "1|/a")], &[(1, "1|free")]), ["new", "new"]);
    // A second copy of a held row; a row that comes and goes; a user's plan changes.
    assert_eq!(
        epoch(
            &[(1, "1|/a"), (1, "2|/b"), (-1, "2|/b")],
            &[(-1, "1|free"), (1, "1|pro")]
        ),
        ["delete", "new", "put"]
    );
    assert_eq!(epoch(&[(-1, "1|/a"), (-1, "1|/a")], &[]), ["delete"]);
}
