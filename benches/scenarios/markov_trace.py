#!/usr/bin/env python3
"""Writes 14-markov-trace.csv: arrival times (seconds, one per line) of a two-state
Markov-modulated Poisson process. Quiet state 0.3 tasks/s (mean stay 10 min), busy state
3 tasks/s (mean stay 5 min), two hours, starting quiet. Deterministic: its own splitmix64
generator with a fixed seed, so any Python 3 writes the same file.

    python3 benches/scenarios/markov_trace.py > benches/scenarios/14-markov-trace.csv
"""
import math

SEED = 141
HORIZON = 7200.0
RATES = (0.3, 3.0)  # tasks/s in the quiet and busy state
STAY = (600.0, 300.0)  # mean seconds in each state
MASK = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & MASK

    def uniform(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        z ^= z >> 31
        return ((z >> 11) + 0.5) / float(1 << 53)

    def exponential(self, mean):
        return -mean * math.log(self.uniform())


def main():
    rng = SplitMix64(SEED)
    print("# two-state Markov-modulated Poisson arrivals; see markov_trace.py")
    t, state = 0.0, 0
    switch = rng.exponential(STAY[state])
    while True:
        gap = rng.exponential(1.0 / RATES[state])
        if t + gap >= switch:
            # Memoryless: restart the arrival clock at the switch in the new state.
            t, state = switch, 1 - state
            switch = t + rng.exponential(STAY[state])
            continue
        t += gap
        if t >= HORIZON:
            break
        print(f"{t:.2f}")


if __name__ == "__main__":
    main()
