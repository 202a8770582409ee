//! The context as CEL sees it: a lazy view of the instance's JSON map, whose values are
//! converted to CEL values only when an expression reaches them (see the module doc's
//! "Performance"), and CEL values back to JSON and to text for error messages.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use super::budget::charge;
use cel::common::traits::{self, Container, Indexer, Iterable, Sizer, Zeroer};
use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelUInt, Type,
    MAP_TYPE,
};
use cel::common::value::{CowVal, Val};
use cel::ExecutionError;
use serde_json::{Map, Value as Json};

/// The deepest JSON value the evaluator converts; deeper values are an evaluation error.
pub(super) const MAX_JSON_DEPTH: usize = 128;

/// The context as CEL sees it: a map whose values are converted only when reached.
pub(super) struct JsonObject<'v> {
    map: &'v Map<String, Json>,
    /// The keys as CEL strings, built on the first iteration (`context.all(k, ...)`).
    keys: OnceLock<Vec<CelString<'v>>>,
}

impl<'v> JsonObject<'v> {
    pub(super) fn new(map: &'v Map<String, Json>) -> Self {
        JsonObject {
            map,
            keys: OnceLock::new(),
        }
    }

    fn lookup(&self, key: &dyn Val) -> Result<Option<&'v Json>, ExecutionError> {
        if let Some(key) = key.downcast_ref::<CelString>() {
            Ok(self.map.get(key.inner()))
        } else if key.downcast_ref::<CelInt>().is_some()
            || key.downcast_ref::<CelUInt>().is_some()
            || key.downcast_ref::<CelDouble>().is_some()
            || key.downcast_ref::<CelBool>().is_some()
        {
            // a valid key type, but a JSON object only has string keys
            Ok(None)
        } else {
            Err(ExecutionError::UnexpectedType {
                got: key.get_type().name().to_owned(),
                want: "map key".to_owned(),
            })
        }
    }

    fn get_converted(&self, key: &dyn Val) -> Result<Box<dyn Val + 'v>, ExecutionError> {
        match self.lookup(key)? {
            Some(value) => json_to_val(value, 0),
            None => Err(ExecutionError::no_such_key(&key_text(key))),
        }
    }
}

impl fmt::Debug for JsonObject<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // never the whole context: error messages would carry it
        write!(f, "context ({} keys)", self.map.len())
    }
}

pub(super) fn key_text(key: &dyn Val) -> String {
    if let Some(s) = key.downcast_ref::<CelString>() {
        s.inner().to_owned()
    } else if let Some(i) = key.downcast_ref::<CelInt>() {
        i.inner().to_string()
    } else if let Some(u) = key.downcast_ref::<CelUInt>() {
        u.inner().to_string()
    } else if let Some(d) = key.downcast_ref::<CelDouble>() {
        d.inner().to_string()
    } else if let Some(b) = key.downcast_ref::<CelBool>() {
        b.inner().to_string()
    } else {
        key.get_type().name().to_owned()
    }
}

impl<'v> Val for JsonObject<'v> {
    fn get_type(&self) -> &Type {
        &MAP_TYPE
    }

    fn cel_type() -> &'static Type {
        &MAP_TYPE
    }

    fn as_container(&self) -> Option<&dyn Container> {
        Some(self)
    }

    fn as_indexer<'b, 'w>(&'b self) -> Option<&'b (dyn Indexer + 'w)>
    where
        Self: 'w,
    {
        Some(self)
    }

    fn as_iterable<'b, 'w>(&'b self) -> Option<&'b (dyn Iterable + 'w)>
    where
        Self: 'w,
    {
        Some(self)
    }

    fn as_sizer(&self) -> Option<&dyn Sizer> {
        Some(self)
    }

    fn as_zeroer(&self) -> Option<&dyn Zeroer> {
        Some(self)
    }

    /// Equal to a map with the same keys and equal values. (A map literal on the left,
    /// `{'a': 1} == context`, only compares equal to cel's own maps: write `context` first.)
    fn equals(&self, other: &dyn Val) -> bool {
        let (Some(sizer), Some(indexer)) = (other.as_sizer(), other.as_indexer()) else {
            return false;
        };
        if *sizer.size().inner() != self.map.len() as i64 || other.get_type() != &MAP_TYPE {
            return false;
        }
        self.map.iter().all(|(key, value)| {
            let key = CelString::from(key.as_str());
            match (indexer.get(&key), json_to_val(value, 0)) {
                (Ok(theirs), Ok(ours)) => ours.equals(theirs.as_ref()),
                _ => false,
            }
        })
    }

    fn clone_as_boxed<'w>(&self) -> Box<dyn Val + 'w>
    where
        Self: 'w,
    {
        Box::new(JsonObject::new(self.map))
    }
}

impl Container for JsonObject<'_> {
    fn contains(&self, key: &dyn Val) -> Result<bool, ExecutionError> {
        Ok(self.lookup(key)?.is_some())
    }
}

impl<'v> Indexer for JsonObject<'v> {
    fn get<'b, 'w>(&'b self, key: &dyn Val) -> Result<CowVal<'b, 'w>, ExecutionError>
    where
        Self: 'w,
    {
        self.get_converted(key)
            .map(|value| CowVal::Owned(value as Box<dyn Val + 'w>))
    }

    fn steal<'w>(self: Box<Self>, key: &dyn Val) -> Result<Box<dyn Val + 'w>, ExecutionError>
    where
        Self: 'w,
    {
        self.get_converted(key)
    }
}

impl<'v> Iterable for JsonObject<'v> {
    fn iter<'b, 'w>(&'b self) -> Box<dyn traits::Iterator<'b, 'w> + 'b>
    where
        Self: 'w,
    {
        let keys = self.keys.get_or_init(|| {
            self.map
                .keys()
                .map(|k| CelString::from(k.as_str()))
                .collect()
        });
        Box::new(KeyIter { keys: keys.iter() })
    }
}

pub(super) struct KeyIter<'b, 'v> {
    keys: std::slice::Iter<'b, CelString<'v>>,
}

impl<'b, 'v: 'w, 'w> traits::Iterator<'b, 'w> for KeyIter<'b, 'v> {
    fn next(&mut self) -> Option<&'b (dyn Val + 'w)> {
        self.keys.next().map(|k| k as &(dyn Val + 'w))
    }
}

impl Sizer for JsonObject<'_> {
    fn size(&self) -> CelInt {
        CelInt::from(i64::try_from(self.map.len()).unwrap_or(i64::MAX))
    }
}

impl Zeroer for JsonObject<'_> {
    fn is_zero_value(&self) -> bool {
        self.map.is_empty()
    }
}

/// Converts a JSON value to a CEL value, borrowing its strings.
pub(super) fn json_to_val(value: &Json, depth: usize) -> Result<Box<dyn Val + '_>, ExecutionError> {
    charge(1)?;
    if depth > MAX_JSON_DEPTH {
        return Err(ExecutionError::function_error(
            "context",
            format!("a value is nested deeper than {MAX_JSON_DEPTH} levels"),
        ));
    }
    Ok(match value {
        Json::Null => Box::new(CelNull),
        Json::Bool(b) => Box::new(CelBool::from(*b)),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Box::new(CelInt::from(i))
            } else if let Some(u) = n.as_u64() {
                Box::new(CelUInt::from(u))
            } else {
                Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN)))
            }
        }
        Json::String(s) => Box::new(CelString::from(s.as_str())),
        Json::Array(items) => {
            let items = items
                .iter()
                .map(|item| json_to_val(item, depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            Box::new(CelList::from(items))
        }
        Json::Object(map) => {
            let mut entries = HashMap::with_capacity(map.len());
            for (key, value) in map {
                entries.insert(
                    CelMapKey::String(CelString::from(key.as_str())),
                    json_to_val(value, depth + 1)?,
                );
            }
            Box::new(CelMap::from(entries))
        }
    })
}

/// A CEL value as JSON, when it has a JSON form.
pub(super) fn to_json(value: &dyn Val) -> Option<Json> {
    cel::Value::try_from(value).ok().and_then(|v| v.json().ok())
}

/// The type of a value and a short rendering of it, for error messages: `int 42`.
pub(super) fn describe(value: &dyn Val) -> String {
    let type_name = value.get_type().name();
    match to_json(value) {
        Some(json) => {
            let mut text = json.to_string();
            if text.len() > 64 {
                let mut end = 61;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text.truncate(end);
                text.push_str("...");
            }
            format!("{type_name} {text}")
        }
        None => type_name.to_owned(),
    }
}
