//! Redis Cluster hash slots: which slot a key is in, and which key of a command decides
//! where it goes. Used to send a pipeline whose commands are in several slots as one
//! pipeline per slot (ARCHITECTURE.md invariant 12: no command crosses slots).

use redis::{Arg, Cmd};

/// The number of hash slots of a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// The slot of a key, as Redis Cluster computes it: CRC16 (XMODEM) of the key's hash tag
/// (the part between the first `{` and the next `}`, if not empty) or of the whole key,
/// modulo 16384.
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = match key.iter().position(|b| *b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|b| *b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16_xmodem(hashed) % SLOTS
}

/// CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, as Redis Cluster uses.
fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for byte in data {
        crc ^= u16::from(*byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The slot a command goes to: that of its first key, or `None` for a command without
/// keys (`PING`, `TIME`, `SCRIPT LOAD`, an `EVALSHA` with no keys), which any node answers.
pub fn command_slot(cmd: &Cmd) -> Option<u16> {
    first_key(cmd).map(key_slot)
}

/// The first key of a command, by the command's argument layout.
fn first_key(cmd: &Cmd) -> Option<&[u8]> {
    let args: Vec<&[u8]> = cmd
        .args_iter()
        .filter_map(|a| match a {
            Arg::Simple(bytes) => Some(bytes),
            _ => None,
        })
        .collect();
    let name = args.first()?.to_ascii_uppercase();
    match name.as_slice() {
        b"PING" | b"TIME" | b"INFO" | b"SCRIPT" | b"CLUSTER" | b"CLIENT" | b"CONFIG"
        | b"DBSIZE" | b"ECHO" | b"FUNCTION" | b"KEYS" | b"SCAN" | b"WAIT" | b"ROLE" | b"MULTI"
        | b"EXEC" | b"DISCARD" | b"HELLO" | b"AUTH" | b"SELECT" | b"LASTSAVE" => None,
        b"EVAL" | b"EVALSHA" | b"EVAL_RO" | b"EVALSHA_RO" | b"FCALL" | b"FCALL_RO" => {
            let keys: usize = std::str::from_utf8(args.get(2)?).ok()?.parse().ok()?;
            if keys == 0 {
                None
            } else {
                args.get(3).copied()
            }
        }
        b"XREAD" | b"XREADGROUP" => {
            let streams = args
                .iter()
                .position(|a| a.eq_ignore_ascii_case(b"STREAMS"))?;
            args.get(streams + 1).copied()
        }
        // A subcommand, then the key.
        b"XINFO" | b"XGROUP" | b"OBJECT" | b"MEMORY" => args.get(2).copied(),
        _ => args.get(1).copied(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from `CLUSTER KEYSLOT` on Redis 7.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        // An empty tag does not count; only the first `{...}` does.
        assert_eq!(key_slot(b"{}foo"), crc16_xmodem(b"{}foo") % SLOTS);
        assert_eq!(key_slot(b"{a}{b}"), key_slot(b"a"));
        assert_eq!(key_slot(b"x{y"), crc16_xmodem(b"x{y") % SLOTS);
    }

    #[test]
    fn a_command_goes_to_its_first_key() {
        let mut get = redis::cmd("GET");
        get.arg("{t:p1}:stats");
        assert_eq!(command_slot(&get), Some(key_slot(b"t:p1")));
        let mut info = redis::cmd("XINFO");
        info.arg("GROUPS").arg("{t:p2}:q:default");
        assert_eq!(command_slot(&info), Some(key_slot(b"t:p2")));
        let mut eval = redis::cmd("EVALSHA");
        eval.arg("abc").arg(1).arg("{t:p3}:lease").arg("x");
        assert_eq!(command_slot(&eval), Some(key_slot(b"t:p3")));
        let mut keyless = redis::cmd("EVALSHA");
        keyless.arg("abc").arg(0).arg("x");
        assert_eq!(command_slot(&keyless), None);
        let mut read = redis::cmd("XREADGROUP");
        read.arg("GROUP").arg("g").arg("c").arg("COUNT").arg(1);
        read.arg("STREAMS").arg("{t:p4}:results").arg(">");
        assert_eq!(command_slot(&read), Some(key_slot(b"t:p4")));
        assert_eq!(command_slot(&redis::cmd("TIME")), None);
    }
}
