//! The mapping engine: a named, versioned document (TOML or JSON) that says
//! how a source's columns (CSV), fields (JSON lines) or claims (JWTs) become
//! person attributes. See `docs/mapping.md` for the format.
//!
//! Each attribute's value goes through these steps, in order:
//! 1. raw text: the `column`'s field, or the `columns` joined by `separator`
//!    (default a space; empty parts are skipped);
//! 2. `transforms`, in order: `trim`, `lower`, `upper`, `collapse_spaces`;
//! 3. empty text: `default` when set (used as the final text, skipping 4 and
//!    5), else a `required` error, else the attribute is cleared;
//! 4. `values`: an exact lookup (`T` -> `terminated`); a miss is an error
//!    unless `values_passthrough`;
//! 5. `date_format`: parsed with that layout and written as `YYYY-MM-DD`;
//! 6. `roles`: split on `split` into a set of role names;
//! 7. other attributes: checked against their type (core, or the declared
//!    `type` of a custom attribute);
//! 8. `pattern`: a regular expression the final text must match.
//!
//! A [`MappingDoc`] is compiled against a file's header once
//! ([`MappingDoc::compile`]); the [`CompiledMapping`] then maps each row with
//! no per-row lookups by name. No error message ever contains a cell's value.
use crate::ids::ExternalId;
use crate::person::Incoming;
use crate::schema::{coerce, coerce_owned, core_type, valid_custom_name, AttrType, ROLES};
use chrono::NaiveDate;
use muster_proto::ErrorCode;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

pub enum MappingFormat {
    Toml,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    /// The document itself is wrong; the text names the attribute and why.
    #[error("{0}")]
    Invalid(String),
    /// The file lacks columns the mapping needs (all of them named).
    #[error("missing required column(s): {}", .0.join(", "))]
    MissingColumns(Vec<String>),
    #[error("the header names the column '{0}' more than once")]
    DuplicateColumn(String),
}

/// A problem with one row. Names the column and attribute, never the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    pub column: Option<String>,
    pub attribute: Option<String>,
    pub code: ErrorCode,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    Trim,
    Lower,
    Upper,
    CollapseSpaces,
}

impl Transform {
    fn apply(self, s: String) -> String {
        match self {
            Transform::Trim => {
                let t = s.trim();
                if t.len() == s.len() {
                    s
                } else {
                    t.to_owned()
                }
            }
            // Most values need no change: skip the copy then.
            Transform::Lower if s.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) => s,
            Transform::Upper if s.bytes().all(|b| b.is_ascii() && !b.is_ascii_lowercase()) => s,
            Transform::Lower => s.to_lowercase(),
            Transform::Upper => s.to_uppercase(),
            Transform::CollapseSpaces => s.split_whitespace().collect::<Vec<_>>().join(" "),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeclaredType {
    String,
    Email,
    Date,
    Bool,
    Integer,
    Enum,
}

/// How one attribute is filled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub separator: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transforms: Vec<Transform>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub values_passthrough: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<DeclaredType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enum_values: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
}

/// The document as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDoc {
    key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_error_rate: Option<f64>,
    /// What a file lacking an optional attribute's column gets: a warning
    /// on the import (the default), or a rejection like a required one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    missing_columns: Option<MissingColumns>,
    /// How the files this mapping reads are written; an upload's own
    /// parameters win.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file: Option<FileSettings>,
    #[serde(default)]
    attributes: BTreeMap<String, AttributeSpec>,
}

/// How the files a mapping reads are written (the `[file]` table): the
/// defaults of an upload that does not say.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    /// The CSV delimiter: one ASCII character, or `tab`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    /// The text encoding label (`windows-1252`, ...); the gateway checks it
    /// when the mapping is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// Records (and the header) may end with one delimiter too many.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub trailing_delimiter: bool,
    /// The file format (`csv` or `jsonl`) of an upload that names none
    /// (`application/octet-stream`, as encrypted files are sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// The formats a stored mapping reads.
pub const FILE_FORMATS: [&str; 2] = ["csv", "jsonl"];

impl FileSettings {
    /// The delimiter as a byte, when one is set and valid.
    pub fn delimiter_byte(&self) -> Option<u8> {
        self.delimiter.as_deref().and_then(delimiter_byte)
    }
}

/// A CSV delimiter as the API and the mapping take it: one ASCII
/// character other than a quote or line break, or `tab`.
pub fn delimiter_byte(s: &str) -> Option<u8> {
    match s {
        "tab" | "\t" => Some(b'\t'),
        s if s.len() == 1 && s.is_ascii() && !matches!(s, "\"" | "\n" | "\r") => {
            Some(s.as_bytes()[0])
        }
        _ => None,
    }
}

/// What a file lacking an optional attribute's column gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MissingColumns {
    /// The import goes on and says which columns it did not find; those
    /// attributes stay as stored.
    Warn,
    /// The import is rejected (`missing_columns`), as for a required one.
    Error,
}

/// A checked mapping document.
#[derive(Debug, Clone)]
pub struct MappingDoc {
    raw: RawDoc,
    attrs: Vec<Prepared>,
}

/// An attribute spec with its type resolved and regex compiled.
#[derive(Debug, Clone)]
struct Prepared {
    name: String,
    spec: AttributeSpec,
    /// `None` for roles.
    ty: Option<AttrType>,
    pattern: Option<regex::Regex>,
    separator: String,
    /// `date_format`, parsed once.
    date_items: Option<Vec<chrono::format::Item<'static>>>,
}

impl Prepared {
    fn columns(&self) -> Vec<&str> {
        match (&self.spec.column, &self.spec.columns) {
            (Some(c), _) => vec![c.as_str()],
            (None, Some(cs)) => cs.iter().map(String::as_str).collect(),
            (None, None) => Vec::new(),
        }
    }
}

pub const DEFAULT_MAX_ERROR_RATE: f64 = 0.1;

fn invalid(s: impl Into<String>) -> MappingError {
    MappingError::Invalid(s.into())
}

impl MappingDoc {
    pub fn parse(text: &str, format: MappingFormat) -> Result<MappingDoc, MappingError> {
        let raw: RawDoc = match format {
            MappingFormat::Toml => toml::from_str(text).map_err(|e| invalid(toml_message(&e)))?,
            MappingFormat::Json => serde_json::from_str(text).map_err(|e| {
                invalid(format!(
                    "the mapping is not valid JSON of the expected shape (line {}, column {})",
                    e.line(),
                    e.column()
                ))
            })?,
        };
        Self::check(raw)
    }

    fn check(raw: RawDoc) -> Result<MappingDoc, MappingError> {
        if raw.key.trim().is_empty() {
            return Err(invalid("key: the key column must be named"));
        }
        if let Some(r) = raw.max_error_rate {
            if !(0.0..=1.0).contains(&r) {
                return Err(invalid("max_error_rate: must be between 0.0 and 1.0"));
            }
        }
        if let Some(f) = &raw.file {
            if f.delimiter.is_some() && f.delimiter_byte().is_none() {
                return Err(invalid(
                    "file.delimiter: must be one ASCII character (or 'tab'), not a quote or line break",
                ));
            }
            if f.format
                .as_deref()
                .is_some_and(|x| !FILE_FORMATS.contains(&x))
            {
                return Err(invalid("file.format: must be 'csv' or 'jsonl'"));
            }
            if f.encoding.as_deref().is_some_and(|e| e.trim().is_empty()) {
                return Err(invalid("file.encoding: must name an encoding"));
            }
        }
        if raw.attributes.is_empty() {
            return Err(invalid("attributes: the mapping maps no attribute"));
        }
        let mut attrs = Vec::new();
        for (name, spec) in &raw.attributes {
            let at = |m: &str| invalid(format!("attributes.{name}: {m}"));
            let ty = if name == ROLES {
                if spec.type_.is_some() || spec.date_format.is_some() {
                    return Err(at("roles take no type or date_format"));
                }
                None
            } else if let Some(core) = core_type(name) {
                if spec.type_.is_some() {
                    return Err(at("a core attribute has a fixed type; remove `type`"));
                }
                Some(core)
            } else if valid_custom_name(name) {
                let declared = spec.type_.ok_or_else(|| {
                    at("not a core attribute; a custom attribute must declare its `type`")
                })?;
                Some(match declared {
                    DeclaredType::String => AttrType::String,
                    DeclaredType::Email => AttrType::Email,
                    DeclaredType::Date => AttrType::Date,
                    DeclaredType::Bool => AttrType::Bool,
                    DeclaredType::Integer => AttrType::Integer,
                    DeclaredType::Enum => AttrType::Enum(
                        spec.enum_values
                            .clone()
                            .filter(|v| !v.is_empty())
                            .ok_or_else(|| at("type enum needs enum_values"))?,
                    ),
                })
            } else {
                return Err(at(
                    "not an attribute name (core attributes, `roles`, or custom names of lowercase letters, digits and _)",
                ));
            };
            if spec.enum_values.is_some() && spec.type_ != Some(DeclaredType::Enum) {
                return Err(at("enum_values go with type = \"enum\""));
            }
            match (&spec.column, &spec.columns) {
                (Some(c), None) if !c.trim().is_empty() => {}
                (None, Some(cs)) if !cs.is_empty() && cs.iter().all(|c| !c.trim().is_empty()) => {}
                (Some(_), Some(_)) => return Err(at("give `column` or `columns`, not both")),
                _ => return Err(at("needs a `column` (or `columns` to concatenate)")),
            }
            if spec.split.is_some() && name != ROLES {
                return Err(at("`split` applies to roles only"));
            }
            if let Some(f) = &spec.date_format {
                // A layout that cannot format a date cannot parse one either.
                let probe = NaiveDate::from_ymd_opt(2001, 2, 3).unwrap_or_default();
                let mut s = String::new();
                use std::fmt::Write;
                if write!(s, "{}", probe.format(f)).is_err()
                    || NaiveDate::parse_from_str(&s, f).ok() != Some(probe)
                {
                    return Err(at(
                        "date_format is not a usable date layout (strftime, e.g. %m/%d/%Y)",
                    ));
                }
            }
            if let Some(d) = &spec.default {
                if let (Some(ty), true) = (&ty, spec.values.is_none() || !d.is_empty()) {
                    if coerce(ty, d).is_err() {
                        return Err(at("`default` does not fit the attribute's type"));
                    }
                }
            }
            let pattern = match &spec.pattern {
                None => None,
                Some(p) => Some(
                    regex::Regex::new(p)
                        .map_err(|_| at("pattern is not a valid regular expression"))?,
                ),
            };
            let date_items = spec.date_format.as_ref().map(|f| {
                chrono::format::StrftimeItems::new(f)
                    .map(|i| i.to_owned())
                    .collect::<Vec<_>>()
            });
            attrs.push(Prepared {
                name: name.clone(),
                spec: spec.clone(),
                ty,
                pattern,
                separator: spec.separator.clone().unwrap_or_else(|| " ".into()),
                date_items,
            });
        }
        Ok(MappingDoc { raw, attrs })
    }

    pub fn to_canonical_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.raw).unwrap_or(serde_json::Value::Null)
    }

    pub fn max_error_rate(&self) -> f64 {
        self.raw.max_error_rate.unwrap_or(DEFAULT_MAX_ERROR_RATE)
    }

    /// The `[file]` settings (all unset when the mapping has none).
    pub fn file(&self) -> FileSettings {
        self.raw.file.clone().unwrap_or_default()
    }

    pub fn key(&self) -> &str {
        &self.raw.key
    }

    /// The attributes this mapping writes, sorted (`roles` included if mapped).
    pub fn attributes(&self) -> Vec<String> {
        self.attrs.iter().map(|a| a.name.clone()).collect()
    }

    fn check_header_map(&self, header_map: &BTreeMap<String, String>) -> Result<(), MappingError> {
        for k in header_map.keys() {
            let used =
                k == &self.raw.key || self.attrs.iter().any(|a| a.columns().contains(&k.as_str()));
            if !used {
                return Err(invalid(format!(
                    "header_map: '{k}' is not a column of this mapping"
                )));
            }
        }
        Ok(())
    }

    /// Resolves the mapping's columns against a CSV header. `header_map`
    /// renames columns for one import: mapping column -> column in the file.
    pub fn compile(
        &self,
        header: &[&str],
        header_map: &BTreeMap<String, String>,
    ) -> Result<CompiledMapping, MappingError> {
        self.check_header_map(header_map)?;
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (i, h) in header.iter().enumerate() {
            if index.insert(h.trim(), i).is_some() {
                return Err(MappingError::DuplicateColumn(h.trim().to_owned()));
            }
        }
        let file_name =
            |c: &str| -> String { header_map.get(c).cloned().unwrap_or_else(|| c.to_owned()) };
        let mut missing = Vec::new();
        let key_col = file_name(&self.raw.key);
        let key = index.get(key_col.as_str()).copied();
        if key.is_none() {
            missing.push(key_col.clone());
        }
        let mut attrs = Vec::new();
        let mut absent = Vec::new();
        let strict = self.raw.missing_columns == Some(MissingColumns::Error);
        for a in &self.attrs {
            let cols: Vec<String> = a.columns().into_iter().map(file_name).collect();
            let found: Vec<Option<usize>> = cols
                .iter()
                .map(|c| index.get(c.as_str()).copied())
                .collect();
            if found.iter().all(Option::is_some) {
                attrs.push(CompiledAttr {
                    prep: a.clone(),
                    sources: found.into_iter().flatten().map(Source::Index).collect(),
                    column_label: cols.join("+"),
                });
            } else {
                let lacking = cols
                    .iter()
                    .zip(&found)
                    .filter(|(_, f)| f.is_none())
                    .map(|(c, _)| c.clone());
                if a.spec.required || strict {
                    missing.extend(lacking);
                } else {
                    // An optional attribute whose column is absent is not
                    // mapped for this file: it stays as stored, and the
                    // import says so.
                    absent.extend(lacking.map(|c| (c, a.name.clone())));
                }
            }
        }
        if !missing.is_empty() {
            missing.dedup();
            return Err(MappingError::MissingColumns(missing));
        }
        absent.dedup();
        Ok(CompiledMapping {
            key: key.map(Source::Index).unwrap_or(Source::Index(0)),
            key_column: key_col,
            attrs,
            max_error_rate: self.max_error_rate(),
            absent,
        })
    }

    /// For JSON lines and JWT claims: fields are looked up by name.
    pub fn compile_named(
        &self,
        header_map: &BTreeMap<String, String>,
    ) -> Result<CompiledMapping, MappingError> {
        self.check_header_map(header_map)?;
        let file_name =
            |c: &str| -> String { header_map.get(c).cloned().unwrap_or_else(|| c.to_owned()) };
        let key_column = file_name(&self.raw.key);
        Ok(CompiledMapping {
            key: Source::Name(key_column.clone()),
            key_column,
            attrs: self
                .attrs
                .iter()
                .map(|a| {
                    let cols: Vec<String> = a.columns().into_iter().map(file_name).collect();
                    CompiledAttr {
                        prep: a.clone(),
                        column_label: cols.join("+"),
                        sources: cols.into_iter().map(Source::Name).collect(),
                    }
                })
                .collect(),
            max_error_rate: self.max_error_rate(),
            absent: Vec::new(),
        })
    }
}

fn toml_message(e: &toml::de::Error) -> String {
    // toml's message quotes the offending line of the document, which is
    // the operator's own mapping (no personnel data), so it may be shown.
    format!("the mapping is not valid: {}", e.message())
}

#[derive(Debug, Clone)]
enum Source {
    Index(usize),
    Name(String),
}

#[derive(Debug, Clone)]
struct CompiledAttr {
    prep: Prepared,
    sources: Vec<Source>,
    column_label: String,
}

/// A mapping resolved against one file's header.
#[derive(Debug, Clone)]
pub struct CompiledMapping {
    key: Source,
    key_column: String,
    attrs: Vec<CompiledAttr>,
    max_error_rate: f64,
    /// Optional attributes' columns the header lacks: (column, attribute).
    absent: Vec<(String, String)>,
}

/// One field as a source gives it.
enum Field<'a> {
    /// A CSV row shorter than its header.
    Missing,
    /// A JSON object without the key: the attribute is left as stored.
    Absent,
    Text(std::borrow::Cow<'a, str>),
    List(Vec<String>),
    Invalid,
}

fn json_field(v: Option<&serde_json::Value>) -> Field<'_> {
    match v {
        None => Field::Absent,
        Some(serde_json::Value::Null) => Field::Text("".into()),
        Some(serde_json::Value::String(s)) => Field::Text(s.as_str().into()),
        Some(serde_json::Value::Number(n)) => Field::Text(n.to_string().into()),
        Some(serde_json::Value::Bool(b)) => Field::Text(b.to_string().into()),
        Some(serde_json::Value::Array(a)) => {
            let mut out = Vec::new();
            for x in a {
                match x {
                    serde_json::Value::String(s) => out.push(s.clone()),
                    _ => return Field::Invalid,
                }
            }
            Field::List(out)
        }
        Some(serde_json::Value::Object(_)) => Field::Invalid,
    }
}

impl CompiledMapping {
    pub fn max_error_rate(&self) -> f64 {
        self.max_error_rate
    }

    /// The columns of optional attributes the file's header lacks, with
    /// their attributes: those attributes stay as stored for this file.
    pub fn absent_columns(&self) -> &[(String, String)] {
        &self.absent
    }

    /// The file column(s) an attribute is read from, for error reports.
    pub fn column_of(&self, attribute: &str) -> Option<String> {
        self.attrs
            .iter()
            .find(|a| a.prep.name == attribute)
            .map(|a| a.column_label.clone())
    }

    pub fn key_column(&self) -> Option<String> {
        Some(self.key_column.clone())
    }

    /// The external id of a CSV record, when its key cell is valid, even
    /// if other cells are not: a snapshot import must not deactivate the
    /// person of a row that failed for another reason. Invisible format
    /// characters are left out here, so the person a row with such a key
    /// (refused) meant is not deactivated either.
    pub fn row_key(&self, fields: &[&str]) -> Option<ExternalId> {
        match &self.key {
            Source::Index(i) => fields
                .get(*i)
                .and_then(|t| ExternalId::parse(&crate::ids::visible(t.trim())).ok()),
            Source::Name(_) => None,
        }
    }

    /// [`CompiledMapping::row_key`] for a JSON object.
    pub fn object_key(
        &self,
        obj: &serde_json::Map<String, serde_json::Value>,
    ) -> Option<ExternalId> {
        match &self.key {
            Source::Name(n) => match json_field(obj.get(n)) {
                Field::Text(t) => ExternalId::parse(&crate::ids::visible(t.trim())).ok(),
                _ => None,
            },
            Source::Index(_) => None,
        }
    }

    /// Maps one CSV record.
    pub fn map_row(&self, fields: &[&str]) -> Result<Incoming, Vec<RowError>> {
        self.map_with(|src| match src {
            Source::Index(i) => match fields.get(*i) {
                Some(f) => Field::Text((*f).into()),
                None => Field::Missing,
            },
            Source::Name(_) => Field::Missing,
        })
    }

    /// Maps one JSON object (JSON lines, JWT claims).
    pub fn map_object(
        &self,
        obj: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Incoming, Vec<RowError>> {
        self.map_with(|src| match src {
            Source::Name(n) => json_field(obj.get(n)),
            Source::Index(_) => Field::Missing,
        })
    }

    fn map_with<'a>(
        &'a self,
        get: impl Fn(&'a Source) -> Field<'a>,
    ) -> Result<Incoming, Vec<RowError>> {
        let mut errors = Vec::new();
        let key_err = |code: ErrorCode, message: &str| RowError {
            column: Some(self.key_column.clone()),
            attribute: None,
            code,
            message: message.to_owned(),
        };
        let external_id = match get(&self.key) {
            Field::Text(t) => {
                let t = t.trim();
                if t.is_empty() {
                    errors.push(key_err(ErrorCode::MissingKey, "the key column is empty"));
                    None
                } else {
                    match ExternalId::parse_incoming(t) {
                        Ok(id) => Some(id),
                        Err(e) => {
                            errors.push(key_err(ErrorCode::InvalidKey, &e.to_string()));
                            None
                        }
                    }
                }
            }
            Field::Missing => {
                errors.push(key_err(
                    ErrorCode::MissingField,
                    "the row has no field for the key column",
                ));
                None
            }
            Field::Absent => {
                errors.push(key_err(
                    ErrorCode::MissingKey,
                    "the record has no key field",
                ));
                None
            }
            Field::List(_) | Field::Invalid => {
                errors.push(key_err(ErrorCode::InvalidType, "the key must be text"));
                None
            }
        };
        let mut attrs = BTreeMap::new();
        let mut roles = None;
        for a in &self.attrs {
            let p = &a.prep;
            let err = |code: ErrorCode, message: String| RowError {
                column: Some(a.column_label.clone()),
                attribute: Some(p.name.clone()),
                code,
                message,
            };
            // Step 1: raw text (or a list, for roles from JSON).
            let mut parts: Vec<std::borrow::Cow<'_, str>> = Vec::with_capacity(a.sources.len());
            let mut list: Option<Vec<String>> = None;
            let mut bad = false;
            let mut absent = 0;
            for s in &a.sources {
                match get(s) {
                    Field::Text(t) => parts.push(t),
                    Field::Absent => absent += 1,
                    Field::List(l) if p.name == ROLES && a.sources.len() == 1 => list = Some(l),
                    Field::Missing => {
                        errors.push(err(
                            ErrorCode::MissingField,
                            format!("the row has no field '{}'", a.column_label),
                        ));
                        bad = true;
                    }
                    Field::List(_) | Field::Invalid => {
                        errors.push(err(
                            ErrorCode::InvalidType,
                            "the field must be text, a number or a boolean".into(),
                        ));
                        bad = true;
                    }
                }
            }
            if bad {
                continue;
            }
            if absent == a.sources.len() {
                // The record says nothing of this attribute.
                if p.spec.required {
                    errors.push(err(
                        ErrorCode::Required,
                        format!("the required attribute '{}' is missing", p.name),
                    ));
                }
                continue;
            }
            if let Some(l) = list {
                match role_set(l.iter().map(String::as_str)) {
                    Ok(set) => roles = Some(set),
                    Err(e) => errors.push(err(ErrorCode::InvalidRole, e)),
                }
                continue;
            }
            let mut text: String = if parts.len() == 1 {
                parts.pop().map(|c| c.into_owned()).unwrap_or_default()
            } else {
                parts
                    .iter()
                    .map(|s| s.trim())
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(&p.separator)
            };
            // Step 2.
            for t in &p.spec.transforms {
                text = t.apply(text);
            }
            // Step 3.
            let mut from_default = false;
            if text.is_empty() {
                match &p.spec.default {
                    Some(d) => {
                        text = d.clone();
                        from_default = true;
                    }
                    None if p.spec.required => {
                        errors.push(err(
                            ErrorCode::Required,
                            format!("the required attribute '{}' is empty", p.name),
                        ));
                        continue;
                    }
                    None => {
                        if p.name == ROLES {
                            roles = Some(BTreeSet::new());
                        } else {
                            attrs.insert(p.name.clone(), None);
                        }
                        continue;
                    }
                }
            }
            if !from_default {
                // Step 4.
                if let Some(map) = &p.spec.values {
                    match map.get(&text) {
                        Some(v) => text = v.clone(),
                        None if p.spec.values_passthrough => {}
                        None => {
                            errors.push(err(
                                ErrorCode::UnmappedValue,
                                format!(
                                    "the value is not one of the mapped values ({})",
                                    map.keys().cloned().collect::<Vec<_>>().join(", ")
                                ),
                            ));
                            continue;
                        }
                    }
                }
                // Step 5.
                if let (Some(f), Some(items)) = (&p.spec.date_format, &p.date_items) {
                    let mut parsed = chrono::format::Parsed::new();
                    let date = chrono::format::parse(&mut parsed, &text, items.iter())
                        .ok()
                        .and_then(|_| parsed.to_naive_date().ok());
                    match date {
                        Some(d) => text = crate::schema::iso_date(d),
                        None => {
                            errors.push(err(
                                ErrorCode::InvalidDate,
                                format!("the value is not a date in the format {f}"),
                            ));
                            continue;
                        }
                    }
                }
            }
            // Step 8 runs on the final text, before it is typed.
            if let Some(re) = &p.pattern {
                if !re.is_match(&text) {
                    errors.push(err(
                        ErrorCode::PatternMismatch,
                        "the value does not match the attribute's pattern".into(),
                    ));
                    continue;
                }
            }
            match &p.ty {
                // Step 6.
                None => {
                    let parts: Vec<&str> = match &p.spec.split {
                        Some(sep) => text.split(sep.as_str()).collect(),
                        None => vec![text.as_str()],
                    };
                    match role_set(parts.into_iter()) {
                        Ok(set) => roles = Some(set),
                        Err(e) => errors.push(err(ErrorCode::InvalidRole, e)),
                    }
                }
                // Step 7.
                Some(ty) => match coerce_owned(ty, text) {
                    Ok(v) => {
                        attrs.insert(p.name.clone(), Some(v));
                    }
                    Err(e) => errors.push(err(e.code, e.message)),
                },
            }
        }
        match external_id {
            Some(external_id) if errors.is_empty() => Ok(Incoming {
                external_id,
                attrs,
                roles,
            }),
            _ => Err(errors),
        }
    }
}

/// A role name: 1 to 64 of letters, digits and `_.:-`.
pub fn valid_role_name(r: &str) -> bool {
    (1..=64).contains(&r.len())
        && r.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

fn role_set<'a>(parts: impl Iterator<Item = &'a str>) -> Result<BTreeSet<String>, String> {
    let mut set = BTreeSet::new();
    for r in parts.map(str::trim).filter(|r| !r.is_empty()) {
        if !valid_role_name(r) {
            return Err("a role name must be 1 to 64 letters, digits or '_.:-'".into());
        }
        set.insert(r.to_owned());
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::AttrValue;

    const DOC: &str = r#"
key = "Employee ID"
max_error_rate = 0.05

[attributes.given_name]
column = "First Name"
transforms = ["trim"]
required = true

[attributes.display_name]
columns = ["First Name", "Last Name"]

[attributes.email]
column = "Work Email"
transforms = ["trim", "lower"]

[attributes.employment_status]
column = "Worker Status"
transforms = ["trim", "upper"]
values = { A = "active", L = "leave", T = "terminated" }
default = "active"

[attributes.hire_date]
column = "Hire Date"
date_format = "%m/%d/%Y"

[attributes.roles]
column = "Roles"
split = ";"

[attributes.cost_center]
column = "Cost Center"
type = "integer"
pattern = "^[0-9]{4}$"
"#;

    const HEADER: [&str; 8] = [
        "Employee ID",
        "First Name",
        "Last Name",
        "Work Email",
        "Worker Status",
        "Hire Date",
        "Roles",
        "Cost Center",
    ];

    fn doc() -> MappingDoc {
        MappingDoc::parse(DOC, MappingFormat::Toml).unwrap()
    }

    fn s(v: &str) -> Option<AttrValue> {
        Some(AttrValue::string(v))
    }

    #[test]
    fn a_good_row_maps_every_option() {
        let m = doc().compile(&HEADER, &BTreeMap::new()).unwrap();
        let inc = m
            .map_row(&[
                "E1",
                " Ada ",
                "Lovelace",
                " ADA@Example.COM",
                "t",
                "12/10/2015",
                "staff; vpn;",
                "1234",
            ])
            .unwrap();
        assert_eq!(inc.external_id.as_str(), "E1");
        assert_eq!(inc.attrs["given_name"], s("Ada"));
        assert_eq!(inc.attrs["display_name"], s("Ada Lovelace"));
        assert_eq!(inc.attrs["email"], s("ada@example.com"));
        assert_eq!(inc.attrs["employment_status"], s("terminated"));
        assert_eq!(inc.attrs["hire_date"], s("2015-12-10"));
        assert_eq!(inc.attrs["cost_center"], Some(AttrValue::integer(1234)));
        assert_eq!(
            inc.roles,
            Some(["staff".to_string(), "vpn".to_string()].into())
        );
    }

    #[test]
    fn defaults_and_empty_optional_fields() {
        let m = doc().compile(&HEADER, &BTreeMap::new()).unwrap();
        let inc = m.map_row(&["E1", "Ada", "", "", "", "", "", ""]).unwrap();
        assert_eq!(inc.attrs["employment_status"], s("active"));
        assert_eq!(inc.attrs["email"], None);
        assert_eq!(inc.attrs["display_name"], s("Ada"));
        assert_eq!(inc.roles, Some(BTreeSet::new()));
    }

    #[test]
    fn every_row_error_names_column_and_attribute_but_never_the_value() {
        let m = doc().compile(&HEADER, &BTreeMap::new()).unwrap();
        let errs = m
            .map_row(&[
                "E1",
                " ",
                "L",
                "SECRET1",
                "X-SECRET2",
                "SECRET3",
                "bad role!",
                "12",
            ])
            .unwrap_err();
        let codes: Vec<&str> = errs.iter().map(|e| e.code.as_str()).collect();
        let mut sorted = codes.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            [
                "invalid_date",
                "invalid_email",
                "invalid_role",
                "pattern_mismatch",
                "required",
                "unmapped_value"
            ]
        );
        for e in &errs {
            assert!(e.column.is_some() && e.attribute.is_some());
            for secret in ["SECRET", "bad role"] {
                assert!(!e.message.contains(secret), "{}", e.message);
            }
        }
        let e = m.map_row(&["", "Ada", "", "", "", "", "", ""]).unwrap_err();
        assert_eq!(e[0].code, ErrorCode::MissingKey);
        assert_eq!(e[0].column.as_deref(), Some("Employee ID"));
        let e = m.map_row(&["E1", "Ada"]).unwrap_err();
        assert!(e.iter().all(|e| e.code == ErrorCode::MissingField));
    }

    #[test]
    fn missing_columns_are_all_named_and_optional_ones_are_skipped() {
        let d = doc();
        match d.compile(&["Last Name"], &BTreeMap::new()) {
            Err(MappingError::MissingColumns(c)) => assert_eq!(c, ["Employee ID", "First Name"]),
            other => panic!("{other:?}"),
        }
        let m = d
            .compile(&["Employee ID", "First Name"], &BTreeMap::new())
            .unwrap();
        let inc = m.map_row(&["E1", "Ada"]).unwrap();
        assert_eq!(
            inc.attrs.len(),
            1,
            "unmapped optional attributes stay as stored"
        );
        assert!(matches!(
            d.compile(
                &["Employee ID", "Employee ID", "First Name"],
                &BTreeMap::new()
            ),
            Err(MappingError::DuplicateColumn(_))
        ));
    }

    #[test]
    fn a_header_map_renames_columns_for_one_file() {
        let d = doc();
        let hm: BTreeMap<String, String> = [("First Name".to_string(), "Given".to_string())].into();
        let m = d.compile(&["Employee ID", "Given"], &hm).unwrap();
        assert_eq!(
            m.map_row(&["E1", "Ada"]).unwrap().attrs["given_name"],
            s("Ada")
        );
        assert_eq!(m.column_of("given_name").as_deref(), Some("Given"));
        let bad: BTreeMap<String, String> = [("Nope".to_string(), "X".to_string())].into();
        assert!(matches!(
            d.compile(&HEADER, &bad),
            Err(MappingError::Invalid(_))
        ));
    }

    #[test]
    fn json_objects_map_by_field_name() {
        let m = doc().compile_named(&BTreeMap::new()).unwrap();
        let obj = serde_json::json!({
            "Employee ID": 1001, "First Name": "Ada", "Roles": ["staff", "vpn"],
            "Cost Center": 1234, "Worker Status": null
        });
        let inc = m.map_object(obj.as_object().unwrap()).unwrap();
        assert_eq!(inc.external_id.as_str(), "1001");
        assert_eq!(inc.roles.unwrap().len(), 2);
        assert_eq!(inc.attrs["employment_status"], s("active"));
        assert!(
            !inc.attrs.contains_key("email"),
            "an absent field leaves the attribute alone"
        );
        let e = m
            .map_object(
                serde_json::json!({"Employee ID": "E1"})
                    .as_object()
                    .unwrap(),
            )
            .unwrap_err();
        assert_eq!(e[0].code, ErrorCode::Required);
        let obj = serde_json::json!({"Employee ID": "E1", "First Name": {"x": 1}});
        let e = m.map_object(obj.as_object().unwrap()).unwrap_err();
        assert_eq!(e[0].code, ErrorCode::InvalidType);
    }

    #[test]
    fn documents_are_checked_and_errors_name_the_attribute() {
        let bad = [
            ("key = \"K\"\n[attributes.shoe_size]\ncolumn = \"S\"\n", "shoe_size"),
            ("key = \"K\"\n[attributes.email]\ncolumn = \"E\"\ntype = \"string\"\n", "email"),
            ("key = \"K\"\n[attributes.given_name]\n", "given_name"),
            ("key = \"K\"\n[attributes.given_name]\ncolumn = \"G\"\npattern = \"(\"\n", "pattern"),
            ("key = \"K\"\n[attributes.given_name]\ncolumn = \"G\"\ntransforms = [\"reverse\"]\n", "reverse"),
            ("key = \"K\"\nmax_error_rate = 2.0\n[attributes.given_name]\ncolumn = \"G\"\n", "max_error_rate"),
            ("key = \"K\"\n[attributes.level]\ncolumn = \"L\"\ntype = \"enum\"\n", "enum_values"),
            ("key = \"K\"\n[attributes.hire_date]\ncolumn = \"H\"\ndate_format = \"%Q\"\n", "date_format"),
        ];
        for (text, needle) in bad {
            let e = MappingDoc::parse(text, MappingFormat::Toml)
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{needle}: {e}");
        }
    }

    #[test]
    fn the_canonical_json_round_trips() {
        let d = doc();
        let j = d.to_canonical_json();
        let again = MappingDoc::parse(&j.to_string(), MappingFormat::Json).unwrap();
        assert_eq!(again.to_canonical_json(), j);
        assert_eq!(again.max_error_rate(), 0.05);
        assert!(again.attributes().contains(&"roles".to_string()));
    }

    #[test]
    fn an_absent_optional_column_is_reported_or_with_missing_columns_error_refused() {
        let text = "key = \"K\"\n[attributes.given_name]\ncolumn = \"G\"\nrequired = true\n\
                    [attributes.department]\ncolumn = \"Dept\"\n";
        let d = MappingDoc::parse(text, MappingFormat::Toml).unwrap();
        let c = d.compile(&["K", "G"], &BTreeMap::new()).unwrap();
        assert_eq!(
            c.absent_columns(),
            [("Dept".to_owned(), "department".to_owned())]
        );
        assert!(d
            .compile(&["K", "G", "Dept"], &BTreeMap::new())
            .unwrap()
            .absent_columns()
            .is_empty());
        let strict = format!("missing_columns = \"error\"\n{text}");
        let d = MappingDoc::parse(&strict, MappingFormat::Toml).unwrap();
        match d.compile(&["K", "G"], &BTreeMap::new()) {
            Err(MappingError::MissingColumns(c)) => assert_eq!(c, ["Dept"]),
            other => panic!("{other:?}"),
        }
        let e = MappingDoc::parse(
            &format!("missing_columns = \"ignore\"\n{text}"),
            MappingFormat::Toml,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("missing_columns") || e.contains("ignore"), "{e}");
    }
}
