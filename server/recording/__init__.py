"""Recording and playback: sessions of a room written per track, their manifest in the store, the player."""
