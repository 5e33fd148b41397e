//! Wide amounts (`u128`, `i128`: token units with 18 decimals overflow a `u64`) in events.
//!
//! In the journal (bincode, not human-readable) they stay plain integers, byte for byte as
//! before. In JSON (`journal inspect --json`, the Explorer) they are decimal strings: JSON
//! numbers lose precision past 2^53 in JavaScript, and `serde_json::Value` cannot hold them at
//! all past `u64`.

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

macro_rules! wide {
    ($module:ident, $int:ty, $serialize:ident, $deserialize:ident, $visit:ident) => {
        pub mod $module {
            use super::*;

            pub fn serialize<S: Serializer>(value: &$int, serializer: S) -> Result<S::Ok, S::Error> {
                if serializer.is_human_readable() {
                    serializer.collect_str(value)
                } else {
                    serializer.$serialize(*value)
                }
            }

            pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<$int, D::Error> {
                struct Text;
                impl<'de> Visitor<'de> for Text {
                    type Value = $int;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("an integer or a decimal string")
                    }
                    fn visit_str<E: de::Error>(self, text: &str) -> Result<$int, E> {
                        text.parse().map_err(E::custom)
                    }
                    fn visit_u64<E: de::Error>(self, value: u64) -> Result<$int, E> {
                        <$int>::try_from(value).map_err(E::custom)
                    }
                    fn visit_i64<E: de::Error>(self, value: i64) -> Result<$int, E> {
                        <$int>::try_from(value).map_err(E::custom)
                    }
                    fn $visit<E: de::Error>(self, value: $int) -> Result<$int, E> {
                        Ok(value)
                    }
                }
                if deserializer.is_human_readable() {
                    deserializer.deserialize_any(Text)
                } else {
                    deserializer.$deserialize(Text)
                }
            }
        }
    };
}

wide!(u128_text, u128, serialize_u128, deserialize_u128, visit_u128);
wide!(i128_text, i128, serialize_i128, deserialize_i128, visit_i128);

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Plain {
        amount: u128,
        delta: i128,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Wide {
        #[serde(with = "super::u128_text")]
        amount: u128,
        #[serde(with = "super::i128_text")]
        delta: i128,
    }

    #[test]
    fn bincode_bytes_are_unchanged_and_json_holds_every_digit() {
        let config = bincode::config::standard();
        let (amount, delta) = (u128::MAX - 7, i128::MIN + 3);
        let plain = bincode::serde::encode_to_vec(Plain { amount, delta }, config).unwrap();
        let wide = bincode::serde::encode_to_vec(Wide { amount, delta }, config).unwrap();
        assert_eq!(plain, wide, "the journal's bytes must not change");
        let (back, _): (Wide, usize) = bincode::serde::decode_from_slice(&wide, config).unwrap();
        assert_eq!(back, Wide { amount, delta });

        let value = serde_json::to_value(Wide { amount, delta }).unwrap();
        assert_eq!(value["amount"], amount.to_string());
        assert_eq!(value["delta"], delta.to_string());
        let back: Wide = serde_json::from_value(value).unwrap();
        assert_eq!(back, Wide { amount, delta });
        let from_numbers: Wide = serde_json::from_str(r#"{"amount": 5, "delta": -2}"#).unwrap();
        assert_eq!(from_numbers, Wide { amount: 5, delta: -2 });
    }
}
