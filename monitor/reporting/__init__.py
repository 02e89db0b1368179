"""Reports: uptime and SLA figures from the store (``figures``, over ``timelines``), what
people read of them (``text``, ``html``, ``csvfile``), and the scheduled ``[[reports]]``
(``schedule``: when and over which period; ``mail``: the message; ``sender``: the agent's job
and ``watchdesk report --send``)."""
