//! SCIM payloads as import files: a BulkRequest (RFC 7644 §3.7) whose
//! `Operations` are the rows, or a ListResponse (RFC 7644 §3.4.2), what
//! `GET /Users` of an identity provider exports, whose `Resources` are.
//! The document is read a value at a time, so a file of a million Users
//! is never held whole; only one operation (or resource) at a time is, up
//! to the line limit.
//!
//! Rows are numbered from 1 in the order of the array. Each row is handed
//! on as its JSON object: a resource of a ListResponse as the operation
//! `{"method": "POST", "path": "/Users", "data": <resource>}`, so that
//! both kinds reach the mapping in the same shape. What a User means is
//! the server's business (`docs/scim.md`).
//!
//! The members around the array (`schemas`, `failOnErrors`,
//! `totalResults`, ...) may come before or after it, as JSON allows; the
//! `schemas` member must name the message the array belongs to. A file
//! that breaks the document's structure is a [`FormatError`]; an element
//! that is not an object, or not valid JSON inside brackets that balance,
//! spoils only its row.
use crate::records::{FormatError, Item, Record, RowProblem};
use muster_proto::ErrorCode;
use serde_json::{Map, Value};
use std::io::BufRead;

pub const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// Longest member name or member value outside the array.
const MAX_MEMBER_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Operations,
    Resources,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    Member { first: bool },
    Array { first: bool },
    End,
    Done,
}

pub(crate) struct BulkReader {
    state: State,
    /// Longest element, in bytes.
    max: usize,
    /// Physical line of the next byte, 1-based, for messages.
    line: u64,
    row: u64,
    array: Option<Kind>,
    schemas: Vec<String>,
    buf: Vec<u8>,
}

impl BulkReader {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            state: State::Start,
            max,
            line: 1,
            row: 0,
            array: None,
            schemas: Vec::new(),
            buf: Vec::new(),
        }
    }

    fn broken(&self, why: impl Into<String>) -> FormatError {
        FormatError::NotScim {
            line: self.line,
            why: why.into(),
        }
    }

    /// The next byte that is not white space, not taken.
    fn skip_ws<R: BufRead>(&mut self, r: &mut R) -> Result<Option<u8>, FormatError> {
        loop {
            let chunk = r.fill_buf()?;
            if chunk.is_empty() {
                return Ok(None);
            }
            let mut i = 0;
            let mut lines = 0;
            while i < chunk.len() && matches!(chunk[i], b' ' | b'\t' | b'\r' | b'\n') {
                lines += u64::from(chunk[i] == b'\n');
                i += 1;
            }
            let next = chunk.get(i).copied();
            r.consume(i);
            self.line += lines;
            if next.is_some() {
                return Ok(next);
            }
        }
    }

    /// Takes `b`, which the caller has seen is next.
    fn take<R: BufRead>(r: &mut R) {
        r.consume(1);
    }

    /// Copies the JSON value that starts at the next byte into `buf`,
    /// following strings and brackets: a string, object or array ends
    /// with its closing byte, any other value before the byte that ends
    /// it. At most `max` bytes; `too_long` is the error past that.
    fn take_value<R: BufRead>(
        &mut self,
        r: &mut R,
        max: usize,
        too_long: impl Fn(&Self) -> FormatError,
    ) -> Result<(), FormatError> {
        self.buf.clear();
        let (mut depth, mut in_str, mut esc) = (0u32, false, false);
        loop {
            let chunk = r.fill_buf()?;
            if chunk.is_empty() {
                return Err(self.broken("the file ends inside a value"));
            }
            let mut i = 0;
            let mut done = false;
            let mut lines = 0;
            while i < chunk.len() {
                let b = chunk[i];
                if in_str {
                    if esc {
                        esc = false;
                    } else if b == b'\\' {
                        esc = true;
                    } else if b == b'"' {
                        in_str = false;
                        if depth == 0 {
                            i += 1;
                            done = true;
                            break;
                        }
                    }
                } else {
                    match b {
                        b'"' => in_str = true,
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' if depth == 0 => {
                            done = true;
                            break;
                        }
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                i += 1;
                                done = true;
                                break;
                            }
                        }
                        b',' | b' ' | b'\t' | b'\r' | b'\n' if depth == 0 => {
                            done = true;
                            break;
                        }
                        _ => {}
                    }
                }
                lines += u64::from(b == b'\n');
                i += 1;
            }
            self.buf.extend_from_slice(&chunk[..i]);
            r.consume(i);
            self.line += lines;
            if self.buf.len() > max {
                return Err(too_long(self));
            }
            if done {
                return Ok(());
            }
        }
    }

    /// The next row, or `None` at the end of the document (which must then
    /// have been a whole BulkRequest or ListResponse).
    pub(crate) fn next<R: BufRead>(&mut self, r: &mut R) -> Result<Option<Item>, FormatError> {
        loop {
            match self.state {
                State::Start => {
                    match self.skip_ws(r)? {
                        None => return Err(FormatError::Empty),
                        Some(b'{') => {
                            Self::take(r);
                            self.state = State::Member { first: true };
                        }
                        Some(_) => return Err(self.broken(
                            "a SCIM BulkRequest or ListResponse is a JSON object, and this file \
                             does not begin with one",
                        )),
                    }
                }
                State::Member { first } => {
                    let mut b = self.skip_ws(r)?;
                    if b.is_none() {
                        return Err(self.broken("the file ends before the document's closing '}'"));
                    }
                    if b == Some(b'}') {
                        Self::take(r);
                        self.state = State::End;
                        continue;
                    }
                    if !first {
                        if b != Some(b',') {
                            return Err(self.broken("expected ',' or '}' after a member"));
                        }
                        Self::take(r);
                        b = self.skip_ws(r)?;
                    }
                    if b != Some(b'"') {
                        return Err(self.broken("expected a member name in double quotes"));
                    }
                    let long = |me: &Self| me.broken("a member name is too long");
                    self.take_value(r, MAX_MEMBER_BYTES, long)?;
                    let name: String = serde_json::from_slice(&self.buf)
                        .map_err(|_| self.broken("a member name is not a valid JSON string"))?;
                    if self.skip_ws(r)? != Some(b':') {
                        return Err(self.broken("expected ':' after a member name"));
                    }
                    Self::take(r);
                    let b = self.skip_ws(r)?;
                    let kind = if name.eq_ignore_ascii_case("Operations") {
                        Some(Kind::Operations)
                    } else if name.eq_ignore_ascii_case("Resources") {
                        Some(Kind::Resources)
                    } else {
                        None
                    };
                    if let Some(kind) = kind {
                        if self.array.is_some() {
                            return Err(self.broken(
                                "the file has more than one Operations or Resources array",
                            ));
                        }
                        if b != Some(b'[') {
                            return Err(self.broken(format!("{name} must be an array")));
                        }
                        Self::take(r);
                        self.array = Some(kind);
                        self.state = State::Array { first: true };
                        continue;
                    }
                    let long = |me: &Self| me.broken(format!("the member '{name}' is too long"));
                    self.take_value(r, MAX_MEMBER_BYTES, long)?;
                    let value: Value = serde_json::from_slice(&self.buf)
                        .map_err(|_| self.broken("a member's value is not valid JSON"))?;
                    if name.eq_ignore_ascii_case("schemas") {
                        let Some(list) = value.as_array() else {
                            return Err(self.broken("schemas must be an array of URIs"));
                        };
                        self.schemas = list
                            .iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect();
                    }
                    self.state = State::Member { first: false };
                }
                State::Array { first } => {
                    let mut b = self.skip_ws(r)?;
                    if b.is_none() {
                        return Err(self.broken("the file ends inside the array"));
                    }
                    if first && b == Some(b']') {
                        Self::take(r);
                        self.state = State::Member { first: false };
                        continue;
                    }
                    if !first {
                        match b {
                            Some(b']') => {
                                Self::take(r);
                                self.state = State::Member { first: false };
                                continue;
                            }
                            Some(b',') => {
                                Self::take(r);
                                b = self.skip_ws(r)?;
                            }
                            _ => {
                                return Err(self
                                    .broken("expected ',' or ']' after an element of the array"))
                            }
                        }
                    }
                    if b.is_none() {
                        return Err(self.broken("the file ends inside the array"));
                    }
                    self.state = State::Array { first: false };
                    self.row += 1;
                    let row = self.row;
                    let max = self.max;
                    self.take_value(r, max, |_| FormatError::ElementTooLong { row, max })?;
                    return Ok(Some(self.element(row)));
                }
                State::End => {
                    if self.skip_ws(r)?.is_some() {
                        return Err(self.broken("there is more after the closing '}'"));
                    }
                    let Some(kind) = self.array else {
                        return Err(self.broken(
                            "it has neither Operations (a BulkRequest) nor Resources (a \
                             ListResponse)",
                        ));
                    };
                    let urn = match kind {
                        Kind::Operations => BULK_REQUEST,
                        Kind::Resources => LIST_RESPONSE,
                    };
                    if !self.schemas.iter().any(|s| s.eq_ignore_ascii_case(urn)) {
                        return Err(self.broken(format!("its schemas do not name {urn}")));
                    }
                    if self.row == 0 {
                        return Err(FormatError::Empty);
                    }
                    self.state = State::Done;
                }
                State::Done => return Ok(None),
            }
        }
    }

    /// The element just read, as a row.
    fn element(&self, row: u64) -> Item {
        let problem = |code, message: &str| {
            Item::Problem(RowProblem {
                row,
                column: None,
                code,
                message: message.to_owned(),
            })
        };
        match serde_json::from_slice::<Value>(&self.buf) {
            Ok(Value::Object(object)) => Item::Record(Record::Object {
                row,
                object: match self.array {
                    Some(Kind::Resources) => {
                        let mut op = Map::new();
                        op.insert("method".into(), Value::from("POST"));
                        op.insert("path".into(), Value::from("/Users"));
                        op.insert("data".into(), Value::Object(object));
                        op
                    }
                    _ => object,
                },
            }),
            Ok(_) => problem(ErrorCode::NotAnObject, "the element is not a JSON object"),
            Err(_) => problem(ErrorCode::InvalidJson, "the element is not valid JSON"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str, max: usize) -> Result<Vec<Item>, FormatError> {
        // One byte at a time as well as whole: the scanner must not care
        // where the reader's buffer ends.
        let whole = read_all(text.as_bytes(), max);
        let trickled = read_all(std::io::BufReader::with_capacity(1, text.as_bytes()), max);
        assert_eq!(
            format!("{whole:?}"),
            format!("{trickled:?}"),
            "buffer size changed the outcome"
        );
        whole
    }

    fn read_all<R: BufRead>(mut r: R, max: usize) -> Result<Vec<Item>, FormatError> {
        let mut b = BulkReader::new(max);
        let mut out = Vec::new();
        while let Some(i) = b.next(&mut r)? {
            out.push(i);
        }
        Ok(out)
    }

    fn op(i: &Item) -> &Map<String, Value> {
        match i {
            Item::Record(Record::Object { object, .. }) => object,
            other => panic!("not a record: {other:?}"),
        }
    }

    #[test]
    fn a_bulk_request_gives_its_operations_in_order() {
        let text = r#"{"Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "a", "data": {"userName": "x]}"}},
            {"method": "POST", "path": "/Users", "data": {"userName": "y\"}"}}
          ],
          "failOnErrors": 1,
          "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"]}"#;
        let got = rows(text, 1024).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(op(&got[0])["data"]["userName"], "x]}");
        assert_eq!(op(&got[1])["data"]["userName"], "y\"}");
        assert!(matches!(&got[1], Item::Record(r) if r.row() == 2));
    }

    #[test]
    fn a_list_response_gives_its_resources_as_creates() {
        let text = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
          "totalResults":1,"Resources":[{"userName":"a"}]}"#;
        let got = rows(text, 1024).unwrap();
        assert_eq!(op(&got[0])["method"], "POST");
        assert_eq!(op(&got[0])["data"]["userName"], "a");
    }

    #[test]
    fn a_bad_element_spoils_its_row_only() {
        let text = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
          "Operations":[{"a" 1}, 7, {"method":"POST"}]}"#;
        let got = rows(text, 1024).unwrap();
        assert!(
            matches!(&got[0], Item::Problem(p) if p.code == ErrorCode::InvalidJson && p.row == 1)
        );
        assert!(
            matches!(&got[1], Item::Problem(p) if p.code == ErrorCode::NotAnObject && p.row == 2)
        );
        assert_eq!(op(&got[2])["method"], "POST");
    }

    #[test]
    fn a_broken_document_is_refused_with_its_line() {
        let cases = [
            ("", "empty"),
            ("[1]", "does not begin"),
            (
                "{\"Operations\": [{}], \"schemas\": [\"urn:x\"]}",
                "do not name",
            ),
            (
                "{\"schemas\": [\"urn:ietf:params:scim:api:messages:2.0:BulkRequest\"]}",
                "neither",
            ),
            ("{\"Operations\": [{}]\n\n", "ends before"),
            ("{\"Operations\": [{}", "ends inside the array"),
            ("{\"Operations\": [{\"a\": 1", "ends inside a value"),
            ("{\"Operations\": [{}} ", "expected ',' or ']'"),
            ("{\"Operations\": [{}]} x", "more after"),
            ("{\"Operations\": [], \"Resources\": []}", "more than one"),
            ("{\"Operations\": {}}", "must be an array"),
        ];
        for (text, want) in cases {
            let got = rows(text, 1024);
            let msg = match got {
                Err(FormatError::Empty) => "empty".to_owned(),
                Err(e) => e.to_string(),
                Ok(v) => panic!("{text:?} was read as {} rows", v.len()),
            };
            assert!(msg.contains(want), "{text:?}: {msg}");
        }
        let e = rows("{\n\"Operations\":\n[{}\n x", 1024).unwrap_err();
        assert!(e.to_string().contains("line 4"), "{e}");
    }

    #[test]
    fn an_empty_array_is_an_empty_file() {
        let text =
            r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],"Operations":[]}"#;
        assert!(matches!(rows(text, 1024), Err(FormatError::Empty)));
    }

    #[test]
    fn an_element_past_the_limit_stops_the_file_without_reading_it_whole() {
        let big = "x".repeat(10_000);
        let text = format!(
            "{{\"Operations\":[{{}},{{\"data\":\"{big}\"}}],\"schemas\":[\"{BULK_REQUEST}\"]}}"
        );
        let e = rows(&text, 100).unwrap_err();
        assert!(
            matches!(e, FormatError::ElementTooLong { row: 2, max: 100 }),
            "{e}"
        );
    }
}
