//! A `RowBinaryWithNamesAndTypes` writer: a header naming each column and its ClickHouse type,
//! then rows of little-endian values. Written by hand so encoding costs no allocation per field
//! and the header travels with the data (a server checks names and types before inserting).

/// A column: name and ClickHouse type.
pub type Column = (&'static str, &'static str);

pub struct RowBinary {
    pub buf: Vec<u8>,
}

impl RowBinary {
    /// A buffer holding the header for `columns`.
    pub fn new(columns: &[Column], capacity: usize) -> Self {
        let mut w = Self {
            buf: Vec::with_capacity(capacity),
        };
        w.varint(columns.len() as u64);
        for (name, _) in columns {
            w.string(name);
        }
        for (_, ty) in columns {
            w.string(ty);
        }
        w
    }

    pub fn varint(&mut self, mut n: u64) {
        while n >= 0x80 {
            self.buf.push((n as u8) | 0x80);
            n >>= 7;
        }
        self.buf.push(n as u8);
    }

    pub fn string(&mut self, s: &str) {
        self.varint(s.len() as u64);
        self.buf.extend_from_slice(s.as_bytes());
    }

    pub fn opt_string(&mut self, s: Option<&str>) {
        self.string(s.unwrap_or_default());
    }

    pub fn i8(&mut self, v: i8) {
        self.buf.push(v as u8);
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn f64(&mut self, v: f64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn nullable_i64(&mut self, v: Option<i64>) {
        match v {
            Some(v) => {
                self.u8(0);
                self.i64(v);
            }
            None => self.u8(1),
        }
    }

    pub fn nullable_f64(&mut self, v: Option<f64>) {
        match v {
            Some(v) => {
                self.u8(0);
                self.f64(v);
            }
            None => self.u8(1),
        }
    }

    /// `Map(String, String)` of JSON objects: each value as its JSON text.
    pub fn json_map(&mut self, map: &serde_json::Map<String, serde_json::Value>) {
        self.varint(map.len() as u64);
        for (k, v) in map {
            self.string(k);
            // Writing JSON into a Vec cannot fail; the length prefix comes first.
            let text = serde_json::to_string(v).unwrap_or_default();
            self.string(&text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_little_endian_and_strings_length_prefixed() {
        let mut w = RowBinary::new(&[("a", "String")], 64);
        assert_eq!(w.buf, b"\x01\x01a\x06String");
        w.buf.clear();
        w.string(&"x".repeat(300));
        assert_eq!(&w.buf[..2], &[0xac, 0x02]);
        w.buf.clear();
        w.nullable_i64(Some(1));
        w.nullable_i64(None);
        assert_eq!(w.buf, [0, 1, 0, 0, 0, 0, 0, 0, 0, 1]);
    }
}
