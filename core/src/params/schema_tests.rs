//! The checker against schemas schemars really emits: hand-picked cases
//! for the messages, and a property test that it accepts exactly what serde
//! decodes.

use super::*;
use proptest::prelude::*;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Params {
    small: u8,
    label: Option<String>,
    #[serde(default)]
    flags: Vec<bool>,
    mode: Mode,
    #[serde(default)]
    inner: Option<Inner>,
    #[serde(default)]
    shape: Option<Shape>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum Mode {
    Fast,
    Slow,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Inner {
    rate: f64,
    #[serde(default)]
    codes: Vec<i32>,
}

/// Externally tagged enum with data: schemars emits `oneOf`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum Shape {
    Point,
    Circle { r: u16 },
}

fn schema() -> Value {
    schemars::SchemaGenerator::default()
        .into_root_schema_for::<Params>()
        .to_value()
}

fn messages(value: Value) -> Vec<String> {
    validate(&schema(), &value)
        .into_iter()
        .map(|e| e.message)
        .collect()
}

#[test]
fn fitting_params_have_no_errors() {
    assert_eq!(
        messages(json!({"small": 3, "mode": "fast"})),
        Vec::<String>::new()
    );
    let full = json!({"small": 255, "label": null, "flags": [true], "mode": "slow",
        "inner": {"rate": 1.5, "codes": [-1]}, "shape": {"circle": {"r": 2}}});
    assert_eq!(messages(full), Vec::<String>::new());
}

#[test]
fn a_misspelt_key_is_unknown_and_the_right_one_suggested() {
    let errors = validate(&schema(), &json!({"smal": 3, "mode": "fast"}));
    let kinds: Vec<(ErrorKind, String)> = errors
        .iter()
        .map(|e| (e.kind, path_text(&e.path)))
        .collect();
    assert!(
        kinds.contains(&(ErrorKind::MissingKey, "params".to_owned())),
        "{errors:?}"
    );
    assert!(
        kinds.contains(&(ErrorKind::UnknownKey, "smal".to_owned())),
        "{errors:?}"
    );
    let unknown = errors.iter().find(|e| e.kind == ErrorKind::UnknownKey);
    assert_eq!(
        unknown.map(|e| e.message.as_str()),
        Some("unknown param `smal` (did you mean `small`?)")
    );
}

#[test]
fn messages_name_the_param_and_what_was_found() {
    assert_eq!(
        messages(json!({"small": "3", "mode": "fast"})),
        ["param `small` must be an integer, found a string (\"3\")"]
    );
    assert_eq!(
        messages(json!({"small": 256, "mode": "fast"})),
        ["param `small` must be at most 255, found 256"]
    );
    assert_eq!(
        messages(json!({"small": 1, "mode": "medium"})),
        ["param `mode` must be one of \"fast\", \"slow\", found \"medium\""]
    );
    assert_eq!(
        messages(json!({"small": 1, "mode": "fast", "inner": {"rate": 1, "codez": []}})),
        ["unknown param `inner.codez` (did you mean `codes`?)"]
    );
    assert_eq!(
        messages(json!({"small": 1, "mode": "fast", "inner": {"rate": 1.0, "codes": [1, "x"]}})),
        ["param `inner.codes[1]` must be an integer, found a string (\"x\")"]
    );
}

#[test]
fn an_optional_struct_reports_the_inner_mistake_not_the_null_branch() {
    // `inner` is anyOf [Inner, null]: the object branch is the closer one.
    let errors = validate(&schema(), &json!({"small": 1, "mode": "fast", "inner": {}}));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].message, "missing required param `inner.rate`");
    assert_eq!(errors[0].path, vec![PathSegment::Key("inner".into())]);
}

#[test]
fn integers_are_json_integers_as_serde_sees_them() {
    assert_eq!(
        messages(json!({"small": 1.0, "mode": "fast"})),
        ["param `small` must be an integer, found a float (1.0)"]
    );
}

#[test]
fn unknown_keywords_and_foreign_refs_constrain_nothing() {
    let s = json!({"type": "string", "pattern": "^x", "format": "email"});
    assert!(validate(&s, &json!("not-an-email")).is_empty());
    let s = json!({"$ref": "https://example.com/other.json"});
    assert!(validate(&s, &json!(1)).is_empty());
    assert!(validate(&json!(true), &json!({"any": 1})).is_empty());
    assert_eq!(validate(&json!(false), &json!(1)).len(), 1);
}

#[test]
fn draft07_definitions_and_nullable_are_understood() {
    let s = json!({
        "type": "object",
        "properties": {"a": {"$ref": "#/definitions/A"}, "b": {"type": "string", "nullable": true}},
        "definitions": {"A": {"type": "integer", "minimum": 0}},
        "additionalProperties": false
    });
    assert!(validate(&s, &json!({"a": 1, "b": null})).is_empty());
    assert_eq!(validate(&s, &json!({"a": -1})).len(), 1);
}

#[test]
fn a_self_referencing_schema_terminates() {
    let s = json!({"$ref": "#"});
    assert!(validate(&s, &json!(1)).is_empty());
}

/// JSON values near the shape of [`Params`]: right keys and wrong ones,
/// right types and wrong ones, so both outcomes are common.
fn near_params() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..300).prop_map(|n| json!(n)),
        prop_oneof![Just(1.0f64), Just(2.5), Just(-0.5)].prop_map(|f| json!(f)),
        prop_oneof![
            Just("fast"),
            Just("slow"),
            Just("x"),
            Just("point"),
            Just("")
        ]
        .prop_map(|s| json!(s)),
    ];
    let value = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("rate"),
                    Just("codes"),
                    Just("r"),
                    Just("circle"),
                    Just("point"),
                    Just("zz")
                ],
                inner,
                0..3
            )
            .prop_map(|m| json!(m)),
        ]
    });
    let small = prop_oneof![
        8 => (0i64..=255).prop_map(|n| json!(n)),
        1 => value.clone(),
    ];
    let mode = prop_oneof![
        8 => prop_oneof![Just("fast"), Just("slow")].prop_map(|s| json!(s)),
        1 => value.clone(),
    ];
    let others = prop::collection::btree_map(
        prop_oneof![
            Just("label"),
            Just("flags"),
            Just("inner"),
            Just("shape"),
            Just("smal")
        ],
        value,
        0..3,
    );
    (
        prop::option::weighted(0.9, small),
        prop::option::weighted(0.9, mode),
        others,
    )
        .prop_map(|(small, mode, others)| {
            let mut m: serde_json::Map<String, Value> =
                others.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            if let Some(v) = small {
                m.insert("small".into(), v);
            }
            if let Some(v) = mode {
                m.insert("mode".into(), v);
            }
            Value::Object(m)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The promise apply makes: params it accepts decode, and params it
    /// refuses do not (for a type within the supported subset). The
    /// exceptions are serde's second spellings, which the schema does not
    /// allow and no DAG writes (TOML has no null): a struct as the array of
    /// its fields in order, a unit variant as `{"variant": null}`.
    #[test]
    fn the_checker_accepts_exactly_what_serde_decodes(value in near_params()) {
        let fits = validate(&schema(), &value).is_empty();
        let decodes = serde_json::from_value::<Params>(value.clone()).is_ok();
        if fits || !second_spelling(&value) {
            prop_assert_eq!(fits, decodes, "value {}", value);
        }
    }
}

/// Whether a part of [`Params`] uses one of serde's second spellings.
fn second_spelling(value: &Value) -> bool {
    value["inner"].is_array()
        || value["shape"]["circle"].is_array()
        || value["shape"].get("point").is_some_and(Value::is_null)
}

/// The property above is only worth something if both outcomes are common.
#[test]
fn the_generator_makes_both_fitting_and_unfitting_params() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = near_params();
    let (mut fit, mut unfit) = (0, 0);
    for _ in 0..2000 {
        let Ok(tree) = strategy.new_tree(&mut runner) else {
            continue;
        };
        if validate(&schema(), &tree.current()).is_empty() {
            fit += 1;
        } else {
            unfit += 1;
        }
    }
    assert!(fit >= 200 && unfit >= 200, "fit {fit}, unfit {unfit}");
}
