//! The filter language of RFC 7644 §3.4.2.2 (Figure 1): a parser into an
//! AST the server can inspect ([`Filter`], e.g. [`Filter::indexed_eq`] for
//! "`userName eq "x"`"), a canonical [`Display`](std::fmt::Display) that
//! re-parses to the same AST, the PATCH path syntax of RFC 7644 §3.5.2
//! ([`PatchPath`]), and evaluation against a resource ([`eval`]).
//!
//! Operators, `and`/`or`/`not` and `true`/`false`/`null` are matched
//! without case (ABNF strings are case-insensitive, RFC 5234 §2.3).
//! `not` binds tighter than `and`, `and` tighter than `or`; `and` and `or`
//! associate to the left. Input is bounded: at most [`MAX_FILTER_LEN`]
//! bytes and an AST at most [`MAX_DEPTH`] deep (each `and`, `or`, `not`,
//! value path and parenthesis counts), refused with `invalidFilter`, so no
//! input can exhaust the stack of the parser, `Display`, evaluation or drop.
pub mod eval;

use crate::error::ScimError;
use crate::path::{is_attr_name, is_path_char, parse_attr_path, AttrPath};
use serde_json::Number;
use std::fmt;

/// The longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 4096;
/// The deepest AST accepted (a chain of `n` `or`s is `n` deep).
pub const MAX_DEPTH: usize = 64;

/// `compareOp` of Figure 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }

    fn parse(word: &str) -> Option<Self> {
        const ALL: [CompareOp; 9] = [
            CompareOp::Eq,
            CompareOp::Ne,
            CompareOp::Co,
            CompareOp::Sw,
            CompareOp::Ew,
            CompareOp::Gt,
            CompareOp::Ge,
            CompareOp::Lt,
            CompareOp::Le,
        ];
        ALL.into_iter()
            .find(|o| o.as_str().eq_ignore_ascii_case(word))
    }
}

/// `compValue` of Figure 1: a JSON literal. Its `Debug` hides strings
/// and numbers (they are often personnel data; `docs/scim.md`); its
/// `Display` is the literal, for the canonical filter text.
#[derive(Clone, PartialEq)]
pub enum CompValue {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
}

impl fmt::Debug for CompValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompValue::Null => f.write_str("Null"),
            CompValue::Bool(b) => write!(f, "Bool({b})"),
            CompValue::Number(_) => f.write_str("Number(<redacted>)"),
            CompValue::String(_) => f.write_str("String(<redacted>)"),
        }
    }
}

impl fmt::Display for CompValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompValue::Null => f.write_str("null"),
            CompValue::Bool(b) => write!(f, "{b}"),
            CompValue::Number(n) => write!(f, "{n}"),
            CompValue::String(s) => {
                let quoted = serde_json::to_string(s).map_err(|_| fmt::Error)?;
                f.write_str(&quoted)
            }
        }
    }
}

/// A parsed filter. Inside a value path the attribute paths are relative
/// to the complex attribute (`type` in `emails[type eq "work"]`).
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `attrPath compareOp compValue`
    Compare {
        path: AttrPath,
        op: CompareOp,
        value: CompValue,
    },
    /// `attrPath pr`
    Present(AttrPath),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `attrPath "[" valFilter "]"`
    ValuePath {
        path: AttrPath,
        filter: Box<Filter>,
    },
}

/// The size of a filter, for refusing expensive ones with `tooMany`
/// (RFC 7644 §3.12): the number of AST nodes, of comparisons and value
/// paths, and the AST's depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    pub nodes: usize,
    pub comparisons: usize,
    pub depth: usize,
}

impl Filter {
    /// Parses a filter (RFC 7644 §3.4.2.2). Errors are `invalidFilter`
    /// and give the byte offset and what was expected there.
    pub fn parse(s: &str) -> Result<Filter, ScimError> {
        if s.len() > MAX_FILTER_LEN {
            return Err(ScimError::invalid_filter(format!(
                "the filter is longer than {MAX_FILTER_LEN} bytes"
            )));
        }
        let mut p = Parser::new(s);
        let (f, _) = p.or_expr(0, false).map_err(|e| e.into_filter_error())?;
        p.skip_ws();
        if !p.at_end() {
            return Err(
                PErr::at(p.pos, "\"and\", \"or\" or the end of the filter").into_filter_error()
            );
        }
        Ok(f)
    }

    /// `(path, value)` when the whole filter is `path eq "string"`: the
    /// shape the server can answer from an index (`userName eq "x"`,
    /// `externalId eq "x"`, `id eq "x"`).
    pub fn indexed_eq(&self) -> Option<(&AttrPath, &str)> {
        match self {
            Filter::Compare {
                path,
                op: CompareOp::Eq,
                value: CompValue::String(v),
            } => Some((path, v)),
            _ => None,
        }
    }

    /// Whether an index over the named top-level attributes (e.g.
    /// `["id", "userName", "externalId"]`) can answer the filter or narrow
    /// its candidates: an indexed `eq`, an `and` with such a side, or an
    /// `or` of which both sides are.
    pub fn index_answerable(&self, indexed: &[&str]) -> bool {
        match self {
            Filter::And(a, b) => a.index_answerable(indexed) || b.index_answerable(indexed),
            Filter::Or(a, b) => a.index_answerable(indexed) && b.index_answerable(indexed),
            _ => self.indexed_eq().is_some_and(|(p, _)| {
                p.sub.is_none() && indexed.iter().any(|n| n.eq_ignore_ascii_case(&p.name))
            }),
        }
    }

    /// The filter's size (nodes, comparisons, depth).
    pub fn cost(&self) -> Cost {
        match self {
            Filter::Compare { .. } | Filter::Present(_) => Cost {
                nodes: 1,
                comparisons: 1,
                depth: 1,
            },
            Filter::And(a, b) | Filter::Or(a, b) => {
                let (a, b) = (a.cost(), b.cost());
                Cost {
                    nodes: a.nodes + b.nodes + 1,
                    comparisons: a.comparisons + b.comparisons,
                    depth: a.depth.max(b.depth) + 1,
                }
            }
            Filter::Not(a) | Filter::ValuePath { filter: a, .. } => {
                let a = a.cost();
                Cost {
                    nodes: a.nodes + 1,
                    comparisons: a.comparisons,
                    depth: a.depth + 1,
                }
            }
        }
    }

    fn precedence(&self) -> u8 {
        match self {
            Filter::Or(..) => 1,
            Filter::And(..) => 2,
            _ => 3,
        }
    }
}

impl std::str::FromStr for Filter {
    type Err = ScimError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Filter::parse(s)
    }
}

fn write_child(f: &mut fmt::Formatter<'_>, child: &Filter, parens: bool) -> fmt::Result {
    if parens {
        write!(f, "({child})")
    } else {
        write!(f, "{child}")
    }
}

/// The canonical form: lower-case operators and keywords, one space
/// between tokens, JSON-escaped strings, parentheses only where the
/// precedence and left associativity need them.
impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::Compare { path, op, value } => write!(f, "{path} {} {value}", op.as_str()),
            Filter::Present(p) => write!(f, "{p} pr"),
            Filter::And(a, b) | Filter::Or(a, b) => {
                let (prec, kw) = (
                    self.precedence(),
                    if matches!(self, Filter::And(..)) {
                        "and"
                    } else {
                        "or"
                    },
                );
                write_child(f, a, a.precedence() < prec)?;
                write!(f, " {kw} ")?;
                write_child(f, b, b.precedence() <= prec)
            }
            Filter::Not(a) => write!(f, "not ({a})"),
            Filter::ValuePath { path, filter } => write!(f, "{path}[{filter}]"),
        }
    }
}

/// A PATCH operation's `path` (RFC 7644 §3.5.2): `attrPath`, or
/// `valuePath` optionally followed by `.subAttr`
/// (`addresses[type eq "work"].streetAddress`).
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    /// The attribute; with a filter it has no sub-attribute of its own.
    pub attr: AttrPath,
    /// The value selection filter, relative to the attribute.
    pub filter: Option<Filter>,
    /// The sub-attribute after the value path.
    pub sub: Option<String>,
}

impl PatchPath {
    /// Parses a PATCH path; errors are `invalidPath` (RFC 7644 §3.5.2,
    /// Table 9), or `invalidFilter` inside the value filter, with the offset.
    pub fn parse(s: &str) -> Result<PatchPath, ScimError> {
        if s.len() > MAX_FILTER_LEN {
            return Err(ScimError::invalid_path(format!(
                "the path is longer than {MAX_FILTER_LEN} bytes"
            )));
        }
        let Some(open) = s.find('[') else {
            let attr = AttrPath::parse(s)?;
            return Ok(PatchPath {
                attr,
                filter: None,
                sub: None,
            });
        };
        let attr =
            parse_attr_path(&s[..open]).map_err(|(o, w)| PErr::at(o, w).into_path_error())?;
        if attr.sub.is_some() {
            return Err(PErr::at(open, "no sub-attribute before \"[\"").into_path_error());
        }
        let mut p = Parser::new(s);
        p.pos = open + 1;
        // A bad filter inside the brackets is `invalidFilter` (RFC 7644
        // §3.12 Table 9 lists it for PATCH path filters).
        let (filter, _) = p.or_expr(1, true).map_err(|e| e.into_filter_error())?;
        p.skip_ws();
        if !p.eat(']') {
            return Err(PErr::at(p.pos, "\"]\"").into_path_error());
        }
        let rest = &s[p.pos..];
        let sub = if rest.is_empty() {
            None
        } else if let Some(name) = rest.strip_prefix('.') {
            if !is_attr_name(name) {
                return Err(PErr::at(p.pos + 1, "a sub-attribute name").into_path_error());
            }
            Some(name.to_string())
        } else {
            return Err(PErr::at(p.pos, "\".\" and a sub-attribute, or the end").into_path_error());
        };
        Ok(PatchPath {
            attr,
            filter: Some(filter),
            sub,
        })
    }
}

impl fmt::Display for PatchPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.attr)?;
        if let Some(filter) = &self.filter {
            write!(f, "[{filter}]")?;
        }
        if let Some(s) = &self.sub {
            write!(f, ".{s}")?;
        }
        Ok(())
    }
}

/// A parse error: offset and what was expected.
struct PErr {
    pos: usize,
    what: String,
}

impl PErr {
    fn at(pos: usize, what: impl Into<String>) -> Self {
        PErr {
            pos,
            what: what.into(),
        }
    }
    fn text(&self) -> String {
        format!("expected {} at offset {}", self.what, self.pos)
    }
    fn into_filter_error(self) -> ScimError {
        ScimError::invalid_filter(self.text())
    }
    fn into_path_error(self) -> ScimError {
        ScimError::invalid_path(self.text())
    }
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

type PResult<T> = Result<T, PErr>;

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Self {
        Parser { src, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn skip_ws(&mut self) -> bool {
        let before = self.pos;
        while let Some(c) = self.peek() {
            if c == ' ' || c == '\t' || c == '\r' || c == '\n' {
                self.pos += 1;
            } else {
                break;
            }
        }
        self.pos > before
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    /// The next word (path characters) without consuming it.
    fn peek_word(&self) -> &'a str {
        let r = self.rest();
        let end = r.find(|c: char| !is_path_char(c)).unwrap_or(r.len());
        &r[..end]
    }

    /// Consumes `kw` (any case) when it is the next whole word.
    fn eat_keyword(&mut self, kw: &str) -> bool {
        if self.peek_word().eq_ignore_ascii_case(kw) {
            self.pos += kw.len();
            true
        } else {
            false
        }
    }

    fn check_depth(&self, depth: usize) -> PResult<()> {
        if depth > MAX_DEPTH {
            Err(PErr::at(
                self.pos,
                format!("a filter at most {MAX_DEPTH} levels deep"),
            ))
        } else {
            Ok(())
        }
    }

    /// `FILTER` at the lowest precedence: `and`-terms joined by `or`.
    fn or_expr(&mut self, depth: usize, in_vp: bool) -> PResult<(Filter, usize)> {
        let (mut left, mut d) = self.and_expr(depth, in_vp)?;
        loop {
            let save = self.pos;
            if !self.skip_ws() || !self.eat_keyword("or") {
                self.pos = save;
                return Ok((left, d));
            }
            self.require_ws()?;
            let (right, rd) = self.and_expr(depth, in_vp)?;
            d = d.max(rd) + 1;
            self.check_depth(depth + d)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
    }

    fn and_expr(&mut self, depth: usize, in_vp: bool) -> PResult<(Filter, usize)> {
        let (mut left, mut d) = self.unary(depth, in_vp)?;
        loop {
            let save = self.pos;
            if !self.skip_ws() || !self.eat_keyword("and") {
                self.pos = save;
                return Ok((left, d));
            }
            self.require_ws()?;
            let (right, rd) = self.unary(depth, in_vp)?;
            d = d.max(rd) + 1;
            self.check_depth(depth + d)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
    }

    fn require_ws(&mut self) -> PResult<()> {
        // `not(`, `and(` and `or(` are accepted as well as the ABNF's SP.
        if self.skip_ws() || self.peek() == Some('(') {
            Ok(())
        } else {
            Err(PErr::at(self.pos, "a space"))
        }
    }

    fn parenthesised(&mut self, depth: usize, in_vp: bool) -> PResult<(Filter, usize)> {
        self.check_depth(depth + 1)?;
        if !self.eat('(') {
            return Err(PErr::at(self.pos, "\"(\""));
        }
        self.skip_ws();
        let (f, d) = self.or_expr(depth + 1, in_vp)?;
        self.skip_ws();
        if !self.eat(')') {
            return Err(PErr::at(self.pos, "\")\""));
        }
        Ok((f, d))
    }

    fn unary(&mut self, depth: usize, in_vp: bool) -> PResult<(Filter, usize)> {
        self.skip_ws();
        self.check_depth(depth + 1)?;
        if self.peek() == Some('(') {
            return self.parenthesised(depth, in_vp);
        }
        let word = self.peek_word();
        if word.eq_ignore_ascii_case("not") {
            let save = self.pos;
            self.pos += 3;
            self.skip_ws();
            if self.peek() == Some('(') {
                let (f, d) = self.parenthesised(depth + 1, in_vp)?;
                return Ok((Filter::Not(Box::new(f)), d + 1));
            }
            // An attribute named "not" (RFC 7643 §2.1 allows it).
            self.pos = save;
        }
        self.attr_expr(depth, in_vp)
    }

    fn attr_expr(&mut self, depth: usize, in_vp: bool) -> PResult<(Filter, usize)> {
        let start = self.pos;
        let word = self.peek_word();
        if word.is_empty() {
            return Err(PErr::at(start, "an attribute path, \"not\" or \"(\""));
        }
        let path = parse_attr_path(word).map_err(|(o, w)| PErr::at(start + o, w))?;
        self.pos += word.len();
        if self.peek() == Some('[') {
            if in_vp {
                return Err(PErr::at(self.pos, "no value path inside a value path"));
            }
            if path.sub.is_some() {
                return Err(PErr::at(self.pos, "no sub-attribute before \"[\""));
            }
            self.check_depth(depth + 2)?;
            self.pos += 1;
            self.skip_ws();
            let (inner, d) = self.or_expr(depth + 1, true)?;
            self.skip_ws();
            if !self.eat(']') {
                return Err(PErr::at(self.pos, "\"]\""));
            }
            return Ok((
                Filter::ValuePath {
                    path,
                    filter: Box::new(inner),
                },
                d + 1,
            ));
        }
        if !self.skip_ws() {
            return Err(PErr::at(self.pos, "a space and an operator"));
        }
        let op_pos = self.pos;
        let op_word = self.peek_word();
        if op_word.eq_ignore_ascii_case("pr") {
            self.pos += 2;
            return Ok((Filter::Present(path), 1));
        }
        let Some(op) = CompareOp::parse(op_word) else {
            return Err(PErr::at(
                op_pos,
                "an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr)",
            ));
        };
        self.pos += op_word.len();
        if !self.skip_ws() && self.peek() != Some('"') {
            return Err(PErr::at(self.pos, "a space and a value"));
        }
        let value = self.comp_value()?;
        Ok((Filter::Compare { path, op, value }, 1))
    }

    fn comp_value(&mut self) -> PResult<CompValue> {
        let start = self.pos;
        match self.peek() {
            Some('"') => self.string().map(CompValue::String),
            Some(c) if c == '-' || c.is_ascii_digit() => self.number().map(CompValue::Number),
            _ => {
                let w = self.peek_word();
                let v = if w.eq_ignore_ascii_case("true") {
                    CompValue::Bool(true)
                } else if w.eq_ignore_ascii_case("false") {
                    CompValue::Bool(false)
                } else if w.eq_ignore_ascii_case("null") {
                    CompValue::Null
                } else {
                    return Err(PErr::at(
                        start,
                        "a value (a string, a number, true, false or null)",
                    ));
                };
                self.pos += w.len();
                Ok(v)
            }
        }
    }

    /// A JSON string (RFC 8259 §7), escapes included.
    fn string(&mut self) -> PResult<String> {
        let start = self.pos;
        let bytes = self.src.as_bytes();
        let mut i = start + 1;
        loop {
            match bytes.get(i) {
                None => return Err(PErr::at(i, "the closing quote of a string")),
                Some(b'\\') => i += 2,
                Some(b'"') => break,
                Some(_) => i += 1,
            }
        }
        let lit = self
            .src
            .get(start..=i)
            .ok_or_else(|| PErr::at(start, "a JSON string"))?;
        let s: String = serde_json::from_str(lit)
            .map_err(|_| PErr::at(start, "a JSON string with valid escapes"))?;
        self.pos = i + 1;
        Ok(s)
    }

    /// A JSON number (RFC 8259 §6).
    fn number(&mut self) -> PResult<Number> {
        let start = self.pos;
        let r = self.rest();
        let end = r
            .find(|c: char| !(c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E')))
            .unwrap_or(r.len());
        let lit = &r[..end];
        // serde_json checks the grammar; a float's value comes from the
        // standard library, which rounds correctly, so the printed form
        // (shortest round-trip digits) parses back to the same number.
        let n: Number = serde_json::from_str(lit).map_err(|_| PErr::at(start, "a JSON number"))?;
        let n = if n.is_f64() {
            lit.parse::<f64>()
                .ok()
                .and_then(Number::from_f64)
                .ok_or_else(|| PErr::at(start, "a JSON number"))?
        } else {
            n
        };
        self.pos += end;
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
