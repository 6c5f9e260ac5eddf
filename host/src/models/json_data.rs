//! OIP `data` arrays parsed straight into typed element vectors.
//!
//! Parsing `data` into a `serde_json::Value` tree first costs about 40 bytes per element (a
//! 2-byte `0,` becomes a `Value` plus a pointer), so a 128 MB request body could take several GB
//! of memory. Here the request keeps `data` as its raw JSON text and, once the datatype is known,
//! a serde visitor walks it once, writing each element as the tensor's element type and checking
//! the nesting against the shape as it goes: memory is the text plus the tensor.

use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};
use std::fmt;

/// An element type `data` can be parsed into; `None` when the JSON value does not fit.
pub trait Element: Sized {
    fn from_bool(_: bool) -> Option<Self> {
        None
    }
    fn from_i64(_: i64) -> Option<Self> {
        None
    }
    fn from_u64(_: u64) -> Option<Self> {
        None
    }
    fn from_f64(_: f64) -> Option<Self> {
        None
    }
    fn from_str(_: &str) -> Option<Self> {
        None
    }
}

impl Element for bool {
    fn from_bool(b: bool) -> Option<Self> {
        Some(b)
    }
}

macro_rules! integer {
    ($($t:ty),*) => {$(
        impl Element for $t {
            fn from_i64(i: i64) -> Option<Self> {
                <$t>::try_from(i).ok()
            }
            fn from_u64(u: u64) -> Option<Self> {
                <$t>::try_from(u).ok()
            }
        }
    )*};
}
integer!(i8, i16, i32, i64, u8, u16, u32, u64);

impl Element for f64 {
    fn from_i64(i: i64) -> Option<Self> {
        Some(i as f64)
    }
    fn from_u64(u: u64) -> Option<Self> {
        Some(u as f64)
    }
    fn from_f64(f: f64) -> Option<Self> {
        Some(f)
    }
}

impl Element for f32 {
    fn from_i64(i: i64) -> Option<Self> {
        Some(i as f32)
    }
    fn from_u64(u: u64) -> Option<Self> {
        Some(u as f32)
    }
    /// Within f32's range only: a larger value would silently become ∞.
    fn from_f64(f: f64) -> Option<Self> {
        let x = f as f32;
        x.is_finite().then_some(x)
    }
}

impl Element for String {
    fn from_str(s: &str) -> Option<Self> {
        Some(s.to_string())
    }
}

/// How `data` is laid out, decided by its first element.
#[derive(Clone, Copy, PartialEq)]
enum Layout {
    Flat,
    Nested,
}

/// One level of `data`: an array (of `dims[0]` items when nested) or a scalar at the bottom.
struct Level<'a, T> {
    out: &'a mut Vec<T>,
    /// The shape of this level's value (nested layout): `[]` for a scalar.
    dims: &'a [usize],
    layout: &'a mut Option<Layout>,
    top: bool,
    /// Most elements the shape allows, so a long array stops early instead of growing.
    limit: usize,
}

impl<'de, T: Element> DeserializeSeed<'de> for Level<'_, T> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<T: Element> Level<'_, T> {
    fn scalar<E: de::Error>(self, v: Option<T>, shown: &dyn fmt::Display) -> Result<(), E> {
        if self.top {
            return Err(E::custom("`data` must be an array"));
        }
        match self.layout {
            Some(Layout::Nested) if !self.dims.is_empty() => {
                return Err(E::custom("nested `data` does not follow the shape"));
            }
            Some(_) => {}
            None => *self.layout = Some(Layout::Flat),
        }
        if self.out.len() == self.limit {
            return Err(E::custom("`data` has more values than the shape"));
        }
        let index = self.out.len();
        let v = v.ok_or_else(|| E::custom(format!("element {index} ({shown}) is not valid")))?;
        self.out.push(v);
        Ok(())
    }
}

impl<'de, T: Element> Visitor<'de> for Level<'_, T> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of values")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Level {
            out,
            dims,
            layout,
            top,
            limit,
        } = self;
        let follow = || de::Error::custom("nested `data` does not follow the shape");
        if !top {
            match layout {
                Some(Layout::Flat) => return Err(follow()),
                None => *layout = Some(Layout::Nested),
                Some(Layout::Nested) => {}
            }
            if dims.is_empty() {
                return Err(follow());
            }
        }
        // An array at this level holds `dims[0]` items, each shaped `dims[1..]`.
        let item_dims = dims.get(1..).unwrap_or(&[]);
        let mut count = 0usize;
        loop {
            let item = Level {
                out: &mut *out,
                dims: item_dims,
                layout: &mut *layout,
                top: false,
                limit,
            };
            if seq.next_element_seed(item)?.is_none() {
                break;
            }
            count += 1;
        }
        if *layout == Some(Layout::Nested) && dims.first().is_some_and(|n| *n != count) {
            return Err(follow());
        }
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.scalar(T::from_bool(v), &v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.scalar(T::from_i64(v), &v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.scalar(T::from_u64(v), &v)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.scalar(T::from_f64(v), &v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        let shown = format!("{v:?}");
        self.scalar(T::from_str(v), &shown)
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.scalar(None, &"null")
    }
    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        self.scalar(None, &"an object")
    }
}

/// Counts the scalars of a JSON value (an array's items, recursively) without keeping any.
struct Scalars<'a>(&'a mut usize);

impl<'de> DeserializeSeed<'de> for Scalars<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Scalars<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Scalars(&mut *self.0))?.is_some() {}
        Ok(())
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map
            .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
            .is_some()
        {}
        *self.0 += 1;
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        *self.0 += 1;
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        *self.0 += 1;
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        *self.0 += 1;
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        *self.0 += 1;
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        *self.0 += 1;
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        *self.0 += 1;
        Ok(())
    }
}

/// How many values `data` holds, counted without allocating any.
fn count_values(json: &str) -> Result<usize, String> {
    let mut n = 0;
    let mut de = serde_json::Deserializer::from_str(json);
    Scalars(&mut n)
        .deserialize(&mut de)
        .map_err(|e| e.to_string())?;
    Ok(n)
}

/// Parse the JSON text of `data` into `count` elements of `T`, nested like `shape` or flat.
/// The values are counted first, so a shape that disagrees with the data is refused before
/// anything is allocated for it.
pub fn parse<T: Element>(json: &str, shape: &[usize], count: usize) -> Result<Vec<T>, String> {
    let found = count_values(json)?;
    if found != count && json.trim_start().starts_with('[') {
        return Err(format!(
            "shape {shape:?} needs {count} values, `data` has {found}"
        ));
    }
    let mut out = Vec::with_capacity(count);
    let mut layout = None;
    let level = Level {
        out: &mut out,
        dims: shape,
        layout: &mut layout,
        top: true,
        limit: count,
    };
    let mut de = serde_json::Deserializer::from_str(json);
    level.deserialize(&mut de).map_err(|e| {
        let m = e.to_string();
        // serde_json appends " at line L column C"; the position is noise for a short array.
        m.split(" at line ").next().unwrap_or(&m).to_string()
    })?;
    if out.len() != count {
        return Err(format!(
            "shape {shape:?} needs {count} values, `data` has {}",
            out.len()
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_and_nested_layouts() {
        assert_eq!(
            parse::<f32>("[1, 2.5, 3, 4]", &[2, 2], 4).unwrap(),
            [1.0, 2.5, 3.0, 4.0]
        );
        assert_eq!(
            parse::<f32>("[[1, 2.5], [3, 4]]", &[2, 2], 4).unwrap(),
            [1.0, 2.5, 3.0, 4.0]
        );
        assert_eq!(
            parse::<i64>("[[[1], [2]], [[3], [4]]]", &[2, 2, 1], 4).unwrap(),
            [1, 2, 3, 4]
        );
        assert_eq!(parse::<bool>("[true]", &[], 1).unwrap(), [true]);
        assert_eq!(
            parse::<String>(r#"["a", "é"]"#, &[2], 2).unwrap(),
            ["a", "é"]
        );
    }

    #[test]
    fn a_shape_larger_than_the_data_is_refused_before_allocating() {
        // Allocating for the shape first would ask for 4 TiB and abort the process.
        let huge = 1usize << 40;
        let e = parse::<f32>("[1, 2]", &[huge], huge).unwrap_err();
        assert!(e.contains("`data` has 2"), "{e}");
        let e = parse::<String>(r#"["a"]"#, &[huge, 2], huge * 2).unwrap_err();
        assert!(e.contains("`data` has 1"), "{e}");
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let err = |json: &str, shape: &[usize]| {
            parse::<i8>(json, shape, shape.iter().product()).unwrap_err()
        };
        assert!(
            err("[1, 300]", &[2]).contains("element 1 (300) is not valid"),
            "{}",
            err("[1, 300]", &[2])
        );
        assert!(err("[1, 2, 3]", &[2, 2]).contains("needs 4 values"));
        assert!(err("[1, 2, 3, 4, 5]", &[2, 2]).contains("needs 4 values, `data` has 5"));
        assert!(err("[[1, 2, 3], [4]]", &[2, 2]).contains("does not follow the shape"));
        assert!(err("[[1, 2], 3, 4]", &[2, 2]).contains("does not follow the shape"));
        assert!(err("[1, [2, 3], 4]", &[2, 2]).contains("does not follow the shape"));
        assert!(err("[[1, 2], [3, 4]]", &[4]).contains("does not follow the shape"));
        assert!(err("1", &[1]).contains("must be an array"));
        assert!(err("[null]", &[1]).contains("(null) is not valid"));
        assert!(err("[{}]", &[1]).contains("is not valid"));
        assert!(
            parse::<f32>("[1e39]", &[1], 1)
                .unwrap_err()
                .contains("is not valid")
        );
        assert!(
            parse::<u8>("[-1]", &[1], 1)
                .unwrap_err()
                .contains("is not valid")
        );
        assert!(
            parse::<i64>("[1.5]", &[1], 1)
                .unwrap_err()
                .contains("is not valid")
        );
    }
}
