//! The mapping file as written (TOML), before it is checked and compiled. Every struct denies
//! unknown keys: a typo in a key is a load error with its line and column, never ignored.
//! `docs/mappings.md` documents every key for the people who write mapping files.

use super::convert::{Step, Unit};
use crate::Severity;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;
use std::marker::PhantomData;
use toml::Spanned;

/// A whole mapping file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MappingSpec {
    /// Stable identifier of the source, e.g. `nanchang-amr-penalty`.
    pub id: Spanned<String>,
    /// Version of this mapping, an integer raised on every change.
    pub version: Spanned<i64>,
    /// What source this mapping reads.
    pub description: String,
    /// Fragment files whose code tables and fields this mapping uses (paths relative to this
    /// file): fields and tables shared by the mappings of one system.
    #[serde(default)]
    pub include: Vec<Spanned<String>>,
    /// The case type: a constant (`"penalty"`) or a rule computing it from the record.
    #[serde(default)]
    pub case_type: Option<Spanned<CaseTypeSpec>>,
    /// Code tables by name.
    #[serde(default)]
    pub tables: OrderedMap<Spanned<TableSpec>>,
    /// The fields, applied in order.
    #[serde(default, rename = "field")]
    pub fields: Vec<Spanned<FieldSpec>>,
    /// Embedded test cases.
    #[serde(default, rename = "test")]
    pub tests: Vec<Spanned<TestSpec>>,
}

/// A fragment named in a mapping's `include`: code tables and fields only.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FragmentSpec {
    /// What the fragment holds (for people; not used).
    #[serde(default)]
    #[allow(dead_code)]
    pub description: Option<String>,
    /// Code tables by name.
    #[serde(default)]
    pub tables: OrderedMap<Spanned<TableSpec>>,
    /// The fields, applied before the including mapping's own.
    #[serde(default, rename = "field")]
    pub fields: Vec<Spanned<FieldSpec>>,
}

/// `case_type = "penalty"` or `case_type = { from = "ajlx", table = "case_types" }`.
#[derive(Debug)]
pub(crate) enum CaseTypeSpec {
    Const(String),
    Rule(Box<FieldSpec>),
}

impl<'de> Deserialize<'de> for CaseTypeSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CaseTypeSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a case type name or a table like { from = \"...\", table = \"...\" }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CaseTypeSpec::Const(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let field = FieldSpec::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(CaseTypeSpec::Rule(Box::new(field)))
            }
        }
        d.deserialize_any(V)
    }
}

/// `[tables.NAME]`: a code table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TableSpec {
    /// CSV file beside the mapping file, columns `source,target[,note]`.
    pub file: Option<Spanned<String>>,
    /// The codes written inline: `values = { i = "insert", u = "update" }`.
    pub values: Option<Spanned<OrderedMap<String>>>,
    /// Policy for codes the table does not list (default `"error"`).
    pub unmapped: Option<Spanned<UnmappedSpec>>,
    /// Free text for readers.
    #[allow(dead_code)]
    pub description: Option<String>,
}

/// `"error"`, `"warn_keep"`, `"null"` or `{ default = "other" }`.
#[derive(Debug)]
pub(crate) enum UnmappedSpec {
    Named(String),
    Default(String),
}

impl<'de> Deserialize<'de> for UnmappedSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct DefaultOnly {
            default: String,
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = UnmappedSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"error\", \"warn_keep\", \"null\" or { default = \"...\" }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(UnmappedSpec::Named(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let d = DefaultOnly::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(UnmappedSpec::Default(d.default))
            }
        }
        d.deserialize_any(V)
    }
}

/// The typed conversion of a field (`as = "..."`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AsType {
    /// Text (the default).
    String,
    /// A calendar day, `YYYY-MM-DD` (Asia/Shanghai).
    Date,
    /// A moment, RFC 3339 with `+08:00`.
    Datetime,
    /// A number (amounts), with `unit`.
    Decimal,
    /// A whole number.
    Integer,
    /// true/false from 是/否, 1/0, Y/N, true/false.
    Boolean,
    /// A list of texts, split on `split`.
    StringArray,
}

/// One `[[field]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FieldSpec {
    pub target: Option<Spanned<String>>,
    pub from: Option<Spanned<OneOrMany>>,
    pub concat: Option<Spanned<Vec<Spanned<ConcatPart>>>>,
    pub separator: Option<String>,
    #[serde(rename = "const")]
    pub constant: Option<Spanned<toml::Value>>,
    pub default: Option<Spanned<toml::Value>>,
    pub required: Option<bool>,
    pub steps: Option<Vec<Step>>,
    #[serde(rename = "as")]
    pub as_type: Option<Spanned<AsType>>,
    pub split: Option<Spanned<String>>,
    pub unit: Option<Spanned<Unit>>,
    pub format: Option<Spanned<String>>,
    pub table: Option<Spanned<String>>,
    pub distinct: Option<bool>,
    pub when: Option<Spanned<WhenList>>,
    pub each: Option<Spanned<String>>,
    pub fields: Option<Vec<Spanned<FieldSpec>>>,
    pub zip: Option<Spanned<OrderedMap<Spanned<String>>>>,
    /// `supplement = true`: the source cannot (always) supply this field; a record without it is
    /// accepted as awaiting supplement (待补录) instead of rejected. Needs `reason`.
    pub supplement: Option<Spanned<bool>>,
    /// Why the source cannot supply a `supplement` field (shown to the department).
    pub reason: Option<Spanned<String>>,
    /// `personal = true`: the field holds a natural person's personal information (a phone
    /// number, an address): the gateway keeps it encrypted and shows it masked.
    pub personal: Option<bool>,
}

/// `"path"` or `["path1", "path2"]`. A single string gets an empty span (use the outer one).
#[derive(Debug)]
pub(crate) struct OneOrMany(pub Vec<Spanned<String>>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a path or a list of paths")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(OneOrMany(vec![Spanned::new(0..0, v.to_string())]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(p) = seq.next_element::<Spanned<String>>()? {
                    out.push(p);
                }
                Ok(OneOrMany(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// One part of `concat`: a path, or `{ const = "..." }`.
#[derive(Debug)]
pub(crate) enum ConcatPart {
    Path(String),
    Const(String),
}

impl<'de> Deserialize<'de> for ConcatPart {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct ConstOnly {
            #[serde(rename = "const")]
            constant: String,
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ConcatPart;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a path or { const = \"...\" }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ConcatPart::Path(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let c = ConstOnly::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(ConcatPart::Const(c.constant))
            }
        }
        d.deserialize_any(V)
    }
}

/// `when = { ... }` or `when = [{ ... }, { ... }]` (all must hold).
#[derive(Debug)]
pub(crate) struct WhenList(pub Vec<Spanned<WhenSpec>>);

impl<'de> Deserialize<'de> for WhenList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = WhenList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a condition table or a list of condition tables")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let w = WhenSpec::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(WhenList(vec![Spanned::new(0..0, w)]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(w) = seq.next_element::<Spanned<WhenSpec>>()? {
                    out.push(w);
                }
                Ok(WhenList(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// One condition.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WhenSpec {
    pub path: Option<Spanned<String>>,
    pub equals: Option<toml::Value>,
    pub not_equals: Option<toml::Value>,
    #[serde(rename = "in")]
    pub in_list: Option<Vec<toml::Value>>,
    pub not_in: Option<Vec<toml::Value>>,
    pub exists: Option<bool>,
    pub case_type: Option<Spanned<String>>,
}

/// One `[[test]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TestSpec {
    pub name: String,
    pub input: Option<toml::Value>,
    pub input_json: Option<Spanned<String>>,
    pub input_xml: Option<Spanned<String>>,
    pub expect: Option<toml::Value>,
    pub expect_json: Option<Spanned<String>>,
    pub expect_fields: Option<Spanned<OrderedMap<toml::Value>>>,
    #[serde(default)]
    pub expect_violations: Vec<ExpectedViolationSpec>,
    pub expect_accepted: Option<bool>,
}

/// `{ rule = "mapping.date", pointer = "/penalty/decision_date" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExpectedViolationSpec {
    pub rule: String,
    pub pointer: Option<String>,
    pub severity: Option<Severity>,
}

/// A TOML table kept in file order, with the span of each key.
#[derive(Debug)]
pub(crate) struct OrderedMap<V>(pub Vec<(Spanned<String>, V)>);

impl<V> Default for OrderedMap<V> {
    fn default() -> Self {
        OrderedMap(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Vis<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for Vis<V> {
            type Value = OrderedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = map.next_key::<Spanned<String>>()? {
                    let v = map.next_value::<V>()?;
                    out.push((k, v));
                }
                Ok(OrderedMap(out))
            }
        }
        d.deserialize_map(Vis(PhantomData))
    }
}
