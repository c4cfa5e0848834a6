//! The text log format's field writer: every value is written so that it cannot forge a log
//! line or drive the terminal, whatever bytes it carries (an upstream's error message, a header,
//! a path). Control characters (newline, carriage return, escape, ...) are escaped everywhere,
//! and a field value that holds white space, quotes, `=` or a backslash is quoted, so that no value
//! can pose as another `key=value`. The JSON format escapes on its own and does not use this.
//!
//! This module owns no subscriber set-up: `main` installs it with `fmt_fields`.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::FormatFields;

/// `fmt_fields` for the text format: `message key=value key="quoted value"`, escaped.
pub struct EscapedFields;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = Visitor {
            writer,
            result: Ok(()),
            first: true,
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct Visitor<'writer> {
    writer: Writer<'writer>,
    result: fmt::Result,
    first: bool,
}

impl Visitor<'_> {
    fn write(&mut self, field: &Field, value: &str) {
        if self.result.is_err() {
            return;
        }
        let separator = if self.first { "" } else { " " };
        self.first = false;
        self.result = if field.name() == "message" {
            write!(self.writer, "{separator}{}", escape_control(value))
        } else {
            write!(self.writer, "{separator}{}={}", field.name(), quote(value))
        };
    }
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.write(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%value` fields arrive here too, their Debug being their Display.
        self.write(field, &format!("{value:?}"));
    }
}

/// The text with every control character escaped (`\n`, `\u{1b}`, ...); all else as it is.
pub fn escape_control(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// A field value as written: bare when it is one plain word, else quoted with Rust's escapes.
fn quote(value: &str) -> String {
    let plain = !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '=' | '\\'));
    if plain {
        value.to_owned()
    } else {
        format!("{value:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn logged(emit: impl FnOnce()) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .without_time()
            .fmt_fields(EscapedFields)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let bytes = captured.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn network_text_cannot_forge_a_line_or_reach_the_terminal() {
        let hostile = "denied\n2026-12-02T00:00:00Z  INFO portcullis: verified image=x \u{1b}[2J\r";
        let out = logged(|| {
            tracing::warn!(error = %hostile, upstream = "ghcr.io", "request failed: {}", hostile);
        });
        assert_eq!(out.matches('\n').count(), 1, "one event, one line: {out:?}");
        assert!(!out.contains('\u{1b}') && !out.contains('\r'), "{out:?}");
        assert!(out.contains(r"\u{1b}[2J"), "{out:?}");
        // The value is quoted: its `image=x` cannot pose as a field of the event.
        assert!(out.contains(r#"error="denied\n2026"#), "{out:?}");
        assert!(out.contains("upstream=ghcr.io"), "{out:?}");
    }

    #[test]
    fn plain_values_stay_bare() {
        assert_eq!(quote("sha256:abc"), "sha256:abc");
        assert_eq!(quote(""), "\"\"");
        assert_eq!(quote("a b"), "\"a b\"");
        assert_eq!(quote("k=v"), "\"k=v\"");
        assert_eq!(escape_control("tab\there"), r"tab\there");
    }
}
