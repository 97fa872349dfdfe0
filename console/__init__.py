"""The reference agent console: `python -m console --brokers HOST:PORT --agent AGENT_ID`.

A small aiohttp server and one static page: live suggestions and alerts per
conversation for one agent (server-sent events), with accept and dismiss
buttons that write Feedback records to ``coaching.feedback``.
"""

from console.server import main, run

__all__ = ["main", "run"]
