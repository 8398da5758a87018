"""A minimal Standard MIDI File writer for synthetic performances (one track, GM snare)."""

from __future__ import annotations

import struct

import numpy as np

TICKS_PER_BEAT = 480
SNARE_NOTE = 38  # General MIDI acoustic snare
DRUM_CHANNEL = 9  # MIDI channel 10, where General MIDI puts percussion


def _variable_length(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def performance_midi(onsets_ms: np.ndarray, velocities: np.ndarray, tempo_bpm: float, note_ms: float = 50.0) -> bytes:
    """A format-0 MIDI file with one snare note per stroke at its actual time and velocity."""
    ms_per_tick = 60000.0 / tempo_bpm / TICKS_PER_BEAT
    events: list[tuple[int, int, bytes]] = []  # (tick, order, message): note-offs sort before note-ons
    start = float(min(0.0, np.min(onsets_ms))) if len(onsets_ms) else 0.0
    for onset, velocity in zip(onsets_ms, velocities):
        tick = int(round((onset - start) / ms_per_tick))
        events.append((tick, 1, bytes([0x90 | DRUM_CHANNEL, SNARE_NOTE, int(np.clip(velocity, 1, 127))])))
        events.append((tick + max(1, int(note_ms / ms_per_tick)), 0, bytes([0x80 | DRUM_CHANNEL, SNARE_NOTE, 0])))
    events.sort(key=lambda e: (e[0], e[1]))

    microseconds_per_beat = int(round(60_000_000 / tempo_bpm))
    track = bytearray(b"\x00\xff\x51\x03" + microseconds_per_beat.to_bytes(3, "big"))
    previous = 0
    for tick, _, message in events:
        track += _variable_length(tick - previous) + message
        previous = tick
    track += b"\x00\xff\x2f\x00"  # end of track
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, TICKS_PER_BEAT)
    return header + b"MTrk" + struct.pack(">I", len(track)) + bytes(track)
