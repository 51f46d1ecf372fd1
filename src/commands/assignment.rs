//! A group member's assignment as the broker stores it: the consumer
//! protocol's bytes, decoded without trusting them.

use std::sync::Arc;

use crate::topic_partition::TopicPartition;

/// Decodes a consumer-protocol assignment (version, [topic, [partition]],
/// user data). A malformed one yields what could be read.
pub(crate) fn parse_assignment(bytes: &[u8]) -> Vec<TopicPartition> {
    fn i16_at(b: &[u8], at: &mut usize) -> Option<i16> {
        let v = i16::from_be_bytes(b.get(*at..*at + 2)?.try_into().ok()?);
        *at += 2;
        Some(v)
    }
    fn i32_at(b: &[u8], at: &mut usize) -> Option<i32> {
        let v = i32::from_be_bytes(b.get(*at..*at + 4)?.try_into().ok()?);
        *at += 4;
        Some(v)
    }
    let mut out = Vec::new();
    let mut at = 0;
    let parse = |out: &mut Vec<TopicPartition>, at: &mut usize| -> Option<()> {
        i16_at(bytes, at)?;
        let topics = i32_at(bytes, at)?;
        for _ in 0..topics.max(0) {
            let len = usize::try_from(i16_at(bytes, at)?).ok()?;
            let name: Arc<str> = Arc::from(std::str::from_utf8(bytes.get(*at..*at + len)?).ok()?);
            *at += len;
            let n = i32_at(bytes, at)?;
            for _ in 0..n.max(0) {
                out.push(TopicPartition::new(name.clone(), i32_at(bytes, at)?));
            }
        }
        Some(())
    };
    let _ = parse(&mut out, &mut at);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_bytes_decode() {
        let mut b = vec![0, 1, 0, 0, 0, 1, 0, 2];
        b.extend_from_slice(b"ev");
        b.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0]);
        assert_eq!(
            parse_assignment(&b),
            vec![TopicPartition::new("ev", 0), TopicPartition::new("ev", 3)]
        );
        assert_eq!(parse_assignment(&b[..9]), vec![]);
    }
}
