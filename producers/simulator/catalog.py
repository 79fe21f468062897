"""What the simulator's customers do: the journeys they follow and the events each stage
emits, per channel. Stage matching is by event type (and, for `resolved`, a disposition), so
any reader of the events can tell which stage an event belongs to.

Time limits say how long a journey may stay at a stage before it counts as dropped off
(docs/concepts.md §4). The journey stage definitions of the pipeline (declarative files) describe
the same two journeys.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class Stage:
    name: str
    # channel -> (event type, touchpoint) pairs the stage may emit there
    events: dict[str, tuple[tuple[str, str], ...]]
    limit: timedelta | None  # time allowed to reach a later stage; None on the final stage
    conversion: float  # probability of reaching the next stage in time
    properties: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Journey:
    name: str
    stages: tuple[Stage, ...]

    def index(self, stage: str) -> int:
        return next(i for i, s in enumerate(self.stages) if s.name == stage)


PURCHASE = Journey(
    "purchase",
    (
        Stage(
            "discover",
            {"web": (("home_view", "/"), ("search", "/search")), "app": (("home_view", "home"),)},
            timedelta(hours=24),
            0.7,
        ),
        Stage(
            "consider",
            {"web": (("product_view", "/product"),), "app": (("product_view", "product"),)},
            timedelta(hours=48),
            0.6,
        ),
        Stage(
            "cart",
            {"web": (("add_to_cart", "/cart"),), "app": (("add_to_cart", "cart"),)},
            timedelta(hours=24),
            0.7,
        ),
        Stage(
            "checkout",
            {"web": (("checkout_step", "/checkout"),), "app": (("checkout_step", "payment"),)},
            timedelta(hours=1),
            0.85,
        ),
        Stage(
            "purchase",
            {
                "web": (("order_completed", "/checkout/done"),),
                "app": (("order_completed", "order_done"),),
                "store": (("pos_purchase", "store:042"),),
            },
            None,
            1.0,
        ),
    ),
)

SUPPORT = Journey(
    "support",
    (
        Stage(
            "issue",
            {"web": (("help_view", "/help"),), "app": (("help_view", "help"),)},
            timedelta(hours=48),
            0.6,
        ),
        Stage(
            "contact",
            {"call_center": (("contact_queued", "queue:support"),)},
            timedelta(hours=24),
            0.8,
        ),
        Stage(
            "resolved",
            {"call_center": (("contact_ended", "queue:support"),)},
            None,
            1.0,
            (("disposition", "resolved"),),
        ),
    ),
)

JOURNEYS = (PURCHASE, SUPPORT)

# Friction the simulator can attach to an event, by channel.
FRICTION = {
    "web": (("error", "http_500"), ("error", "payment_declined"), ("rage_click", "true")),
    "app": (("error", "crash"), ("error", "payment_declined")),
    "call_center": (("transferred", "true"),),
    "store": (("out_of_stock", "true"),),
}
