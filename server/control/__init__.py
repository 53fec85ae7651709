"""Control of a consultation room: roles, permissions, spotlight, mute, floor, lock, speaker, layouts."""
