//! A small structure-aware fuzzer for the parsers clients reach first (the WebSocket frame
//! parser, the GraphQL request parser and document guard): each input is a valid seed mutated
//! a few times (bytes flipped, inserted, deleted or repeated, tokens of the format spliced in,
//! seeds crossed, nesting deepened), so that most inputs get past the first byte. Tests run a
//! few thousand inputs; `GIROK_FUZZ_INPUTS=1000000 cargo test --release -p girok-frontends
//! fuzz` runs a million. A panic names the input that caused it.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Inputs per fuzz test: `GIROK_FUZZ_INPUTS`, else `default`.
pub fn inputs(default: usize) -> usize {
    std::env::var("GIROK_FUZZ_INPUTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// Mutated inputs from `seeds` with `tokens` of the format, reproducible from `seed`.
pub struct Mutator<'a> {
    rng: StdRng,
    seeds: &'a [&'a str],
    tokens: &'a [&'a str],
}

impl<'a> Mutator<'a> {
    pub fn new(seed: u64, seeds: &'a [&'a str], tokens: &'a [&'a str]) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            seeds,
            tokens,
        }
    }

    /// The next input (bytes, not always UTF-8).
    pub fn next_input(&mut self) -> Vec<u8> {
        let mut input = self.seeds[self.rng.random_range(0..self.seeds.len())]
            .as_bytes()
            .to_vec();
        let rounds = self.rng.random_range(1..=8);
        for _ in 0..rounds {
            self.mutate(&mut input);
        }
        input
    }

    fn mutate(&mut self, input: &mut Vec<u8>) {
        let at = self.rng.random_range(0..=input.len());
        match self.rng.random_range(0..8) {
            0 if !input.is_empty() => {
                let i = at.min(input.len() - 1);
                input[i] ^= 1 << self.rng.random_range(0..8);
            }
            1 => input.insert(at, self.rng.random()),
            2 if !input.is_empty() => {
                let end = (at + self.rng.random_range(1..16)).min(input.len());
                input.drain(at.min(end)..end);
            }
            3 => {
                let token = self.tokens[self.rng.random_range(0..self.tokens.len())];
                input.splice(at..at, token.bytes());
            }
            4 if !input.is_empty() => {
                // Repeat a piece: long runs, deep nesting.
                let start = at.min(input.len() - 1);
                let end = (start + self.rng.random_range(1..12)).min(input.len());
                let piece = input[start..end].to_vec();
                let times = self.rng.random_range(1..64);
                for _ in 0..times {
                    input.splice(end..end, piece.iter().copied());
                }
            }
            5 => {
                // Cross with another seed.
                let other = self.seeds[self.rng.random_range(0..self.seeds.len())].as_bytes();
                let from = self.rng.random_range(0..=other.len());
                input.truncate(at);
                input.extend_from_slice(&other[from..]);
            }
            6 => {
                let number = match self.rng.random_range(0..4) {
                    0 => u64::MAX.to_string(),
                    1 => "-1".to_owned(),
                    2 => "1e400".to_owned(),
                    _ => self.rng.random::<u64>().to_string(),
                };
                input.splice(at..at, number.bytes());
            }
            _ => {
                let odd = [
                    "\u{0}",
                    "\u{202E}",
                    "\u{FEFF}",
                    "\u{10FFFF}",
                    "\\u0000",
                    "\\ud800",
                    "é",
                ];
                let token = odd[self.rng.random_range(0..odd.len())];
                input.splice(at..at, token.bytes());
            }
        }
    }
}

/// Runs `check` on `count` inputs; a panic is reported with the input that caused it.
pub fn run(count: usize, mutator: &mut Mutator<'_>, check: impl Fn(&[u8])) {
    for n in 0..count {
        let input = mutator.next_input();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&input)));
        if outcome.is_err() {
            panic!("input {n} panicked: {:?}", String::from_utf8_lossy(&input));
        }
    }
}
