"""The demo bot's action server: ``python data/demo_bot/actions.py [--port 5055]``.

A small FastAPI app (no rasa-sdk needed) that speaks the rasa-sdk webhook format, so dialab's
server (``python -m serving ... --action-endpoint http://127.0.0.1:5055/webhook``) or Rasa itself
can call it:

- ``POST /webhook`` ``{"next_action", "sender_id", "tracker", "domain", "version"}`` →
  ``{"events": [...], "responses": [...]}``; an unknown action answers 404 with
  ``{"error", "action_name"}`` as rasa-sdk does;
- ``GET /actions`` → ``[{"name": ...}, ...]``; ``GET /health`` → ``{"status": "ok"}``.

The actions (see README.md):

``validate_pizza_order_form``
    Checks the candidates of the form (the ``SlotSet`` events at the end of the tracker, rasa-sdk's
    ``slots_to_validate``): sizes and crusts must be values of the domain's categorical slots,
    toppings become a clean list. Once size, topping and crust are filled it adds
    ``wants_delivery`` to the required slots, as a ``FormValidationAction`` whose
    ``required_slots`` is overridden does: it returns ``SlotSet("requested_slot", <first empty
    slot>)``, i.e. ``wants_delivery`` and then ``None`` (which ends the form).
``action_place_order``
    Books the order under a fresh code such as ``PZ1234`` (``SlotSet("order_id", ...)``) and says
    when it will be delivered or ready for pickup.
``action_get_weather``
    A canned forecast for the ``city`` slot and the ``date`` (the date entity of the latest
    message, else the ``date`` slot on a follow-up, else today); without a city it asks for one
    (``utter_ask_city``).
``action_check_order_status``, ``action_cancel_order``, ``action_update_order``
    Canned replies from the order book of this process (orders placed here) or, for other codes,
    a status derived from the code; cancelling in the middle of the form discards the pizza's
    slots; updating applies the ``add`` / ``remove`` toppings of the latest message.

Everything is deterministic: codes come from ``random.Random(seed)``, forecasts and the status of
unknown orders from a CRC32 of their text. No network, no clock.
"""
from __future__ import annotations

import argparse
import random
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

__all__ = ["create_app", "main", "ACTIONS", "forecast", "REQUESTED_SLOT"]

REQUESTED_SLOT = "requested_slot"
FORM = "pizza_order_form"
PIZZA_SLOTS = ("size", "topping", "crust")  # the form's required slots in domain.yml
DELIVERY_SLOT = "wants_delivery"

CONDITIONS = ("sunny", "partly cloudy", "overcast", "light rain", "showers", "windy",
              "foggy in the morning, clearing later", "thunderstorms in the afternoon")
# typical temperatures (°C) of a few cities; others get 15 plus the daily variation
CLIMATE = {"berlin": 11, "london": 12, "paris": 13, "new york": 14, "boston": 12,
           "chicago": 11, "seattle": 12, "san francisco": 16, "los angeles": 21, "austin": 22,
           "denver": 12, "miami": 26, "washington": 15, "las vegas": 22, "atlanta": 18,
           "madrid": 17, "rome": 18, "tokyo": 16, "sydney": 19}
ORDER_STATES = ("being prepared", "in the oven", "out for delivery", "ready for pickup")


# ---- what an action sees and says ----------------------------------------------------------------
class Tracker:
    """The parts of the webhook's tracker JSON the actions read (rasa-sdk's ``Tracker``)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.sender_id = str(data.get("sender_id") or "default")
        self.slots: dict[str, Any] = dict(data.get("slots") or {})
        self.latest_message: dict[str, Any] = dict(data.get("latest_message") or {})
        self.events: list[dict[str, Any]] = list(data.get("events") or [])
        self.active_loop = (data.get("active_loop") or {}).get("name")

    def get_slot(self, name: str) -> Any:
        return self.slots.get(name)

    @property
    def latest_intent(self) -> str | None:
        return (self.latest_message.get("intent") or {}).get("name")

    def entity_values(self, entity: str) -> list[Any]:
        """Values of ``entity`` in the latest message."""
        return [e.get("value") for e in self.latest_message.get("entities") or []
                if e.get("entity") == entity]

    def slots_to_validate(self) -> dict[str, Any]:
        """The ``SlotSet`` events at the end of the tracker: the form's candidates."""
        trailing: list[dict[str, Any]] = []
        for event in reversed(self.events):
            if event.get("event") != "slot":
                break
            trailing.append(event)
        return {e["name"]: e.get("value") for e in reversed(trailing)
                if e.get("name") and e["name"] != REQUESTED_SLOT}


@dataclass
class Dispatcher:
    """Collects the messages of an action (rasa-sdk's ``CollectingDispatcher``)."""

    messages: list[dict[str, Any]] = field(default_factory=list)

    def utter_message(self, text: str | None = None, response: str | None = None,
                      buttons: list[dict[str, Any]] | None = None, **kwargs: Any) -> None:
        message: dict[str, Any] = {"text": text, "buttons": buttons or [], "response": response}
        message.update(kwargs)
        self.messages.append({k: v for k, v in message.items() if v not in (None, [])})


def slot_set(name: str, value: Any) -> dict[str, Any]:
    return {"event": "slot", "name": name, "value": value}


@dataclass
class OrderBook:
    """The orders placed on this server (in memory) and the generator of their codes."""

    seed: int = 0
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def new_code(self) -> str:
        while True:
            code = f"PZ{self.rng.randrange(1000, 10000)}"
            if code not in self.orders:
                return code


Action = Callable[[Tracker, dict[str, Any], Dispatcher, OrderBook], list[dict[str, Any]]]


# ---- the actions ---------------------------------------------------------------------------------
def validate_pizza_order_form(tracker: Tracker, domain: dict[str, Any], dispatcher: Dispatcher,
                              book: OrderBook) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    slots = dict(tracker.slots)
    for name, value in tracker.slots_to_validate().items():
        value = _validate_slot(name, value, domain, dispatcher)
        events.append(slot_set(name, value))
        slots[name] = value
    form_slots = _form_slots(domain)
    required = list(form_slots)
    if all(slots.get(name) is not None for name in PIZZA_SLOTS) and DELIVERY_SLOT not in required:
        required.append(DELIVERY_SLOT)  # the pizza is complete: now ask about delivery
    if required != form_slots:  # rasa-sdk's next_requested_slot for overridden required slots
        events.append(slot_set(REQUESTED_SLOT, next((s for s in required
                                                     if slots.get(s) is None), None)))
    return events


def action_place_order(tracker: Tracker, domain: dict[str, Any], dispatcher: Dispatcher,
                       book: OrderBook) -> list[dict[str, Any]]:
    code = book.new_code()
    order = {name: tracker.get_slot(name) for name in (*PIZZA_SLOTS, DELIVERY_SLOT)}
    order.update(sender_id=tracker.sender_id, status="being prepared")
    book.orders[code] = order
    if order[DELIVERY_SLOT]:
        when = "It will be at your door in about 35 minutes."
    else:
        when = "It will be ready for pickup in about 20 minutes."
    dispatcher.utter_message(text=f"Thanks! Your order {code} is in: {_describe(order)}. {when}")
    return [slot_set("order_id", code)]


def action_get_weather(tracker: Tracker, domain: dict[str, Any], dispatcher: Dispatcher,
                       book: OrderBook) -> list[dict[str, Any]]:
    city = tracker.get_slot("city")
    if not city:
        dispatcher.utter_message(response="utter_ask_city")
        return []
    dates = tracker.entity_values("date")
    if dates:
        date = str(dates[-1])
    elif tracker.latest_intent != "ask_weather" and tracker.get_slot("date"):
        date = str(tracker.get_slot("date"))  # a follow-up, or the answer to "which city?"
    else:
        date = "today"
    dispatcher.utter_message(text=forecast(str(city), date))
    return []


def action_check_order_status(tracker: Tracker, domain: dict[str, Any], dispatcher: Dispatcher,
                              book: OrderBook) -> list[dict[str, Any]]:
    code = tracker.get_slot("order_id")
    if not code:
        dispatcher.utter_message(response="utter_ask_order_id")
        return []
    order = book.orders.get(code)
    if order is None:
        state = ORDER_STATES[zlib.crc32(code.encode()) % len(ORDER_STATES)]
        dispatcher.utter_message(text=f"Order {code} is {state}.")
    elif order["status"] == "cancelled":
        dispatcher.utter_message(text=f"Order {code} was cancelled; you have not been charged.")
    else:
        how = "on its way to you soon" if order[DELIVERY_SLOT] else "ready for pickup soon"
        dispatcher.utter_message(text=f"Order {code} ({_describe(order)}) is {order['status']} "
                                 f"and will be {how}.")
    return []


def action_cancel_order(tracker: Tracker, domain: dict[str, Any], dispatcher: Dispatcher,
                        book: OrderBook) -> list[dict[str, Any]]:
    code = tracker.get_slot("order_id")
    in_progress = any(tracker.get_slot(name) is not None for name in PIZZA_SLOTS)
    order = book.orders.get(code) if code else None
    if order is not None and order["status"] != "cancelled":
        order["status"] = "cancelled"
        dispatcher.utter_message(text=f"Order {code} ({_describe(order)}) is cancelled and "
                                 "will not be charged.")
    elif code and order is None:
        dispatcher.utter_message(text=f"Order {code} is cancelled and will not be charged.")
    elif in_progress:
        dispatcher.utter_message(text="I've discarded the pizza we were putting together.")
    else:
        dispatcher.utter_message(text="There was no order to cancel.")
    # a cancelled pizza is not the next order's starting point
    return [slot_set(name, None) for name in (*PIZZA_SLOTS, DELIVERY_SLOT)
            if tracker.get_slot(name) is not None]


def action_update_order(tracker: Tracker, domain: dict[str, Any], dispatcher: Dispatcher,
                        book: OrderBook) -> list[dict[str, Any]]:
    toppings = _as_list(tracker.get_slot("topping"))
    mentioned = [(e.get("value"), e.get("role")) for e in tracker.latest_message.get("entities")
                 or [] if e.get("entity") == "topping"]
    to_remove = {value for value, role in mentioned if role == "remove"}
    removed = [t for t in toppings if t in to_remove]
    added = list(dict.fromkeys(value for value, role in mentioned
                               if role != "remove" and value not in toppings))
    size, crust = tracker.entity_values("size"), tracker.entity_values("crust")
    if not (removed or added or size or crust):
        dispatcher.utter_message(text="What would you like to change? I can swap, add or "
                                 "remove toppings, or change the size or the crust.")
        return []
    events: list[dict[str, Any]] = []
    changes: list[str] = []
    if removed or added:
        toppings = [t for t in toppings if t not in removed] + added
        events.append(slot_set("topping", toppings))
        changes += [f"no {t}" for t in removed] + [f"with {t}" for t in added]
    if size:
        changes.append(f"{size[-1]} size")
    if crust:
        changes.append(f"{crust[-1]} crust")
    code = tracker.get_slot("order_id")
    order = book.orders.get(code) if code else None
    if order is not None and order["status"] != "cancelled":
        order.update(topping=toppings, size=size[-1] if size else order["size"],
                     crust=crust[-1] if crust else order["crust"])
        dispatcher.utter_message(text=f"Order {code} updated: {_describe(order)}.")
    else:
        dispatcher.utter_message(text=f"Got it: {', '.join(changes)}.")
    return events


ACTIONS: dict[str, Action] = {
    "validate_pizza_order_form": validate_pizza_order_form,
    "action_place_order": action_place_order,
    "action_get_weather": action_get_weather,
    "action_check_order_status": action_check_order_status,
    "action_cancel_order": action_cancel_order,
    "action_update_order": action_update_order,
}


# ---- helpers -------------------------------------------------------------------------------------
def forecast(city: str, date: str = "today") -> str:
    """A canned, deterministic forecast for ``city`` on ``date``."""
    key = f"{city.strip().lower()}|{date.strip().lower()}".encode()
    h = zlib.crc32(key)
    condition = CONDITIONS[h % len(CONDITIONS)]
    high = CLIMATE.get(city.strip().lower(), 15) + (h >> 8) % 9 - 4
    low = high - 4 - (h >> 16) % 5
    when = date.strip() or "today"
    return f"Weather in {city} {when}: {condition}, high {high} °C, low {low} °C."


def _validate_slot(name: str, value: Any, domain: dict[str, Any], dispatcher: Dispatcher) -> Any:
    """The value to keep for a form candidate (None rejects it, with a message)."""
    if value is None:
        return None
    if name == "topping":
        toppings = list(dict.fromkeys(str(t).strip().lower() for t in _as_list(value)
                                      if str(t).strip()))
        return toppings or None
    spec = (domain.get("slots") or {}).get(name) or {}
    allowed = [str(v).lower() for v in spec.get("values") or []]
    if spec.get("type") == "categorical" and allowed:
        text = str(value).strip().lower()
        if text not in allowed:
            dispatcher.utter_message(text=f"Sorry, we don't have {value} as a {name}; "
                                     f"choose {', '.join(allowed[:-1])} or {allowed[-1]}.")
            return None
        return text
    return value


def _form_slots(domain: dict[str, Any]) -> list[str]:
    form = (domain.get("forms") or {}).get(FORM) or {}
    return list(form.get("required_slots") or PIZZA_SLOTS)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _describe(order: dict[str, Any]) -> str:
    toppings = _as_list(order.get("topping"))
    topping = " and ".join(str(t) for t in toppings) if toppings else "cheese"
    size, crust = order.get("size") or "medium", order.get("crust") or "classic"
    return f"a {size} {topping} pizza, {crust} crust"


# ---- the app -------------------------------------------------------------------------------------
def create_app(seed: int = 0) -> FastAPI:
    """The action server; its order book lives as long as the app."""
    app = FastAPI(title="dialab demo bot action server")
    book = OrderBook(seed)
    app.state.book = book

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/actions")
    def actions() -> list[dict[str, str]]:
        return [{"name": name} for name in ACTIONS]

    @app.post("/webhook")
    async def webhook(request: Request):
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "the body is not JSON"}, status_code=400)
        if not isinstance(body, dict):
            return JSONResponse({"error": "the body is not a JSON object"}, status_code=400)
        name = body.get("next_action")
        action = ACTIONS.get(name) if isinstance(name, str) else None
        if action is None:
            return JSONResponse({"error": f"No registered action found for name '{name}'.",
                                 "action_name": name}, status_code=404)
        dispatcher = Dispatcher()
        tracker = Tracker(body.get("tracker") or {})
        events = action(tracker, body.get("domain") or {}, dispatcher, book)
        return {"events": events, "responses": dispatcher.messages}

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python data/demo_bot/actions.py",
                                     description="The demo bot's action server (rasa-sdk "
                                     "webhook format): POST /webhook, GET /health.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5055, help="default 5055, as rasa-sdk")
    parser.add_argument("--seed", type=int, default=0, help="seed of the order codes")
    parser.add_argument("--log-level", default="warning",
                        choices=["critical", "error", "warning", "info", "debug"])
    args = parser.parse_args(argv)

    import uvicorn

    uvicorn.run(create_app(args.seed), host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
