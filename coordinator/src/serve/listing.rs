//! The HTTP side of cursor pagination: a [`Cursor`] as the opaque text clients pass back
//! (`v1:<ms>:<id>` in unpadded base64url), and the `?limit=` of a listing. The listing
//! itself, shared with `weir list`, is [`weir::redis::listing`].

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
pub(super) use weir::redis::listing::Cursor;

use super::problem::Problem;

/// A cursor's opaque text form, as the API hands it out and takes it back.
pub(super) trait CursorText: Sized {
    /// The opaque text form.
    fn encode(&self) -> String;

    /// Parses the text form; a 400 naming `cursor` for anything else.
    fn decode(text: &str) -> Result<Self, Problem>;
}

impl CursorText for Cursor {
    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("v1:{}:{}", self.created_ms, self.id))
    }

    fn decode(text: &str) -> Result<Cursor, Problem> {
        let bad = || {
            Problem::invalid_field(
                "cursor",
                "the cursor is not one this API returned: pass `next_cursor` as it came",
            )
        };
        let bytes = URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| bad())?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        let rest = text.strip_prefix("v1:").ok_or_else(bad)?;
        let (ms, id) = rest.split_once(':').ok_or_else(bad)?;
        let created_ms = ms.parse().map_err(|_| bad())?;
        if id.is_empty() {
            return Err(bad());
        }
        Ok(Cursor {
            created_ms,
            id: id.to_string(),
        })
    }
}

/// A listing's `?limit=`: `default` when absent, else 1 to `max`; a 400 naming `limit`
/// otherwise.
pub(super) fn page_limit(
    limit: Option<usize>,
    default: usize,
    max: usize,
) -> Result<usize, Problem> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(_) => Err(Problem::invalid_field(
            "limit",
            format!("limit must be 1 to {max}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_bad_ones_are_refused() {
        let c = Cursor {
            created_ms: 1_700_000_000_123,
            id: "order:42".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        for bad in ["", "!!", "djE6", "djE6eDpp", "eDox"] {
            let p = Cursor::decode(bad).unwrap_err();
            assert_eq!(p.field.as_deref(), Some("cursor"), "{bad}");
        }
    }
}
