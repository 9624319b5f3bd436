//! Unit tests for the fault proxy's triggers and seeded random cuts.

use super::*;
use proptest::prelude::*;

/// Feeds `data` in chunks of the given sizes; returns the absolute fire offset.
fn fire_offset(trigger: &Trigger, data: &[u8], chunks: &[usize]) -> Option<usize> {
    let mut t = TriggerState::new(trigger);
    let mut off = 0;
    let mut rest = data;
    let mut sizes = chunks.iter().cycle();
    if t.find(&[]) == Some(0) {
        return Some(0);
    }
    while !rest.is_empty() {
        let n = (*sizes.next().unwrap_or(&1)).clamp(1, rest.len());
        let (chunk, later) = rest.split_at(n);
        if let Some(p) = t.find(chunk) {
            return Some(off + p);
        }
        t.advance(chunk);
        off += n;
        rest = later;
    }
    None
}

const FETCH: &[u8] = b"* 1 FETCH (UID 7 BODY[] {10}\r\n0123456789)\r\na1 OK Fetch completed.\r\n";

#[test]
fn in_literal_fires_inside_the_literal() {
    let t = Trigger::InLiteral {
        after: b"BODY[] {".to_vec(),
        bytes: 4,
    };
    let lit = FETCH.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
    assert_eq!(fire_offset(&t, FETCH, &[FETCH.len()]), Some(lit + 4));
    assert_eq!(fire_offset(&t, FETCH, &[1]), Some(lit + 4));
    assert_eq!(fire_offset(&t, FETCH, &[3, 7]), Some(lit + 4));
}

#[test]
fn after_bytes_and_pattern() {
    assert_eq!(fire_offset(&Trigger::AfterBytes(0), FETCH, &[5]), Some(0));
    assert_eq!(fire_offset(&Trigger::AfterBytes(17), FETCH, &[5]), Some(17));
    assert_eq!(fire_offset(&Trigger::AfterBytes(10_000), FETCH, &[5]), None);
    let t = Trigger::AfterPattern {
        pattern: b"a1 OK".to_vec(),
        then: 0,
    };
    let at = FETCH.windows(5).position(|w| w == b"a1 OK").unwrap() + 5;
    assert_eq!(fire_offset(&t, FETCH, &[2]), Some(at));
    let missing = Trigger::AfterPattern {
        pattern: b"nope".to_vec(),
        then: 0,
    };
    assert_eq!(fire_offset(&missing, FETCH, &[3]), None);
}

#[test]
fn random_cuts_are_deterministic() {
    let plan = FaultPlan::new().with_random_cuts(7, 4, 1000);
    let a: Vec<_> = (0..200).map(|i| plan.faults_for(i)).collect();
    let b: Vec<_> = (0..200).map(|i| plan.faults_for(i)).collect();
    assert_eq!(a, b);
    let cut = a.iter().filter(|f| !f.is_empty()).count();
    assert!((25..=75).contains(&cut), "{cut} of 200 cut with 1 in 4");
    for f in a.iter().flatten() {
        assert_eq!(f.action, Action::Cut);
        assert!(matches!(f.trigger, Trigger::AfterBytes(n) if (1..=1000).contains(&n)));
    }
    let other = FaultPlan::new().with_random_cuts(8, 4, 1000);
    assert_ne!(a, (0..200).map(|i| other.faults_for(i)).collect::<Vec<_>>());
    // Explicit faults win over random ones.
    let p = plan.on_connection(3, Fault::bye());
    assert_eq!(p.faults_for(3), vec![Fault::bye()]);
}

proptest! {
    /// The fire offset does not depend on how the stream is split into reads.
    #[test]
    fn chunking_does_not_matter(
        data in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b'\n'), Just(b'{')], 0..300),
        pattern in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b'{')], 1..4),
        then in 0u64..20,
        literal in any::<bool>(),
        chunks in proptest::collection::vec(1usize..17, 1..5),
    ) {
        let t = if literal {
            Trigger::InLiteral { after: pattern.clone(), bytes: then }
        } else {
            Trigger::AfterPattern { pattern: pattern.clone(), then }
        };
        let whole = fire_offset(&t, &data, &[data.len().max(1)]);
        prop_assert_eq!(whole, fire_offset(&t, &data, &chunks));
        // Reference: a straightforward search over the whole stream.
        let expected = find_sub(&data, &pattern).and_then(|p| {
            let mut i = p + pattern.len();
            if literal {
                i += data[i..].iter().position(|&b| b == b'\n')? + 1;
            }
            let at = i + then as usize;
            (at <= data.len()).then_some(at)
        });
        prop_assert_eq!(whole, expected);
    }
}
