"""The relay's hooks into aiortc's internals, one module per concern.

aiortc decodes every received frame and encodes per sender. The relay needs neither: it takes a
publisher's SRTP datagrams off the ICE connection as they arrive (`receive`), sends rewritten
packets itself through the subscriber transport's SRTP session (`srtp.RtpOut`), and lets aiortc's
senders carry only feedback (`send`) while it compounds their RTCP sender reports itself
(`reports`). `ice` sizes socket buffers, drops what would end a transport and closes connections
cleanly. The names touched are private to aiortc, aioice, pylibsrtp and asyncio, so aiortc and
pylibsrtp are pinned exactly and `guard.check_hooks()` (run at start and by a test) fails loudly
when they move. `client` holds what load tools and tests do on the receiving end; the server never
imports it.
"""
