//! A minimal Server-Sent Events reader (the `text/event-stream` format of
//! the WHATWG HTML standard, section 9.2.6): enough for the import progress
//! stream, which uses `event:` and `data:` fields and comment keep-alives.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// `message` when the event named no type.
    pub event: String,
    pub data: String,
}

/// Turns chunks of the stream, split anywhere, into events.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    line: Vec<u8>,
    /// The previous chunk ended in `\r`: a `\n` that starts the next one
    /// belongs to the same line break.
    after_cr: bool,
    event: String,
    data: String,
    has_data: bool,
}

impl SseParser {
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) {
        for &b in chunk {
            let after_cr = std::mem::replace(&mut self.after_cr, false);
            match b {
                b'\n' if after_cr => {}
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    self.line(&String::from_utf8_lossy(&line), out);
                }
                _ => self.line.push(b),
            }
        }
    }

    fn line(&mut self, line: &str, out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            let event = std::mem::take(&mut self.event);
            let data = std::mem::take(&mut self.data);
            if std::mem::replace(&mut self.has_data, false) {
                out.push(SseEvent {
                    event: if event.is_empty() {
                        "message".to_owned()
                    } else {
                        event
                    },
                    data,
                });
            }
            return;
        }
        if line.starts_with(':') {
            return; // a comment: keep-alive
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = value.to_owned(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            _ => {} // id, retry and unknown fields do not matter here
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_pieces(text: &str, piece: usize) -> Vec<SseEvent> {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for c in text.as_bytes().chunks(piece) {
            p.feed(c, &mut out);
        }
        out
    }

    #[test]
    fn events_are_read_however_the_stream_is_split() {
        let text = ": keep-alive\n\nevent: progress\ndata: {\"a\":1}\n\nevent:done\r\ndata: x\r\ndata: y\r\n\r\n";
        for piece in [1, 2, 3, 7, 1000] {
            let ev = parse_in_pieces(text, piece);
            assert_eq!(
                ev,
                vec![
                    SseEvent {
                        event: "progress".into(),
                        data: "{\"a\":1}".into()
                    },
                    SseEvent {
                        event: "done".into(),
                        data: "x\ny".into()
                    },
                ],
                "piece {piece}"
            );
        }
    }

    #[test]
    fn an_event_without_data_is_not_dispatched_and_an_unnamed_one_is_a_message() {
        let ev = parse_in_pieces("event: progress\n\ndata: z\n\n", 4);
        assert_eq!(
            ev,
            vec![SseEvent {
                event: "message".into(),
                data: "z".into()
            }]
        );
    }
}
