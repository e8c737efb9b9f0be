//! The ledger's RFC 8785 writer (`canonical::jcs`) against the maintained library
//! (`serde_json_canonicalizer`) byte for byte: generated values whose strings and keys reach
//! every escape and the two Unicode ranges whose UTF-8 and UTF-16 orders differ, numbers of
//! every kind and magnitude, nested objects and arrays, and members inserted out of order.

use ledger::canonical::jcs;
use proptest::prelude::*;
use serde_json::{Map, Number, Value, json};

/// The library's bytes for `value`.
fn oracle(value: &Value) -> Vec<u8> {
    serde_json_canonicalizer::to_vec(value).expect("the library canonicalizes every value")
}

/// The writer's text for `value`, after checking that the library writes the same bytes.
fn written(value: &Value) -> String {
    let bytes = jcs(value).expect("jcs");
    assert_eq!(bytes, oracle(value), "the writer and the library differ");
    String::from_utf8(bytes).expect("utf-8")
}

/// Characters that matter to the writer, as often as any other: the escaped ones, the first
/// characters past ASCII, the private-use range that sorts after the surrogates in UTF-8 but
/// before them in UTF-16, and characters beyond U+FFFF (written as surrogate pairs in UTF-16).
fn a_char() -> impl Strategy<Value = char> {
    prop_oneof![
        any::<char>(),
        prop::sample::select(vec![
            '"',
            '\\',
            '/',
            '\u{0}',
            '\u{8}',
            '\u{9}',
            '\u{a}',
            '\u{b}',
            '\u{c}',
            '\u{d}',
            '\u{1f}',
            '\u{7f}',
            '\u{80}',
            '\u{2028}',
            '\u{2029}',
            '\u{d7ff}',
            '\u{e000}',
            '\u{fb33}',
            '\u{ffff}',
            '\u{10000}',
            '\u{1f600}',
            '\u{10ffff}',
            'a',
            'b',
            'z',
            '1',
        ]),
    ]
}

fn a_string() -> impl Strategy<Value = String> {
    prop::collection::vec(a_char(), 0..6).prop_map(String::from_iter)
}

fn a_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-(1i64 << 53)..(1i64 << 53)).prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        prop::sample::select(vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.1,
            1e-7,
            1e-6,
            1e20,
            1e21,
            1e21 + 1.0,
            5e-324,
            1.7976931348623157e308,
            333_333_333.333_333_3,
            9007199254740991.0,
            9007199254740992.0,
            123456789012345680000.0,
        ])
        .prop_map(|f: f64| Value::Number(Number::from_f64(f).expect("finite"))),
    ]
}

fn a_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        a_number(),
        a_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            // Members inserted in the generated order. Without serde_json's `preserve_order`
            // (this crate's tests) the map keeps them in UTF-8 byte order, with it in that
            // order: either way the writer's sort by UTF-16 code units is what is checked.
            prop::collection::vec((a_string(), inner), 0..6)
                .prop_map(|members| Value::Object(members.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_writer_matches_the_library_byte_for_byte(value in a_value()) {
        prop_assert_eq!(jcs(&value).expect("jcs"), oracle(&value));
    }
}

/// Keys whose UTF-8 and UTF-16 orders differ, inserted out of order: RFC 8785 section
/// 3.2.3 sorts by UTF-16 code units, so U+1F600 (a surrogate pair from 0xD83D) comes before
/// U+E000 and U+FFFF.
#[test]
fn keys_are_sorted_by_their_utf16_code_units() {
    let mut map = Map::new();
    for key in ["\u{e000}", "\u{ffff}", "\u{1f600}", "a", "\u{80}"] {
        map.insert(key.to_owned(), json!(key.chars().count()));
    }
    let value = Value::Object(map);
    assert_eq!(
        written(&value),
        "{\"a\":1,\"\u{80}\":1,\"\u{1f600}\":1,\"\u{e000}\":1,\"\u{ffff}\":1}"
    );
}

/// The escapes of section 3.2.2.2: the short forms, `\u00xx` in lower case for the other control
/// characters, and nothing else escaped (not `/`, not DEL, not U+2028).
#[test]
fn strings_are_escaped_as_the_rfc_says() {
    let value = json!("\"\\/\u{8}\u{9}\u{a}\u{c}\u{d}\u{0}\u{1f}\u{7f}\u{2028}é");
    assert_eq!(
        written(&value),
        "\"\\\"\\\\/\\b\\t\\n\\f\\r\\u0000\\u001f\u{7f}\u{2028}é\""
    );
}

/// Numbers as ECMAScript writes doubles: integers without a fraction, exponents from 1e21 and
/// below 1e-6, `-0` as `0`.
#[test]
fn numbers_are_written_in_their_ecmascript_form() {
    let value = json!([
        1.0,
        -0.0,
        1e21,
        1e20,
        1e-7,
        0.000001,
        4.5,
        -12,
        9007199254740991_u64
    ]);
    assert_eq!(
        written(&value),
        "[1,0,1e+21,100000000000000000000,1e-7,0.000001,4.5,-12,9007199254740991]"
    );
}
