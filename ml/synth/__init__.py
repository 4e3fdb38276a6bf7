"""Synthetic shop generator: raw exports driven by a latent customer process, plus the truth.

``generate(out_dir, customers, seed, end_date, truth_as_of=None, horizon_days=90,
fmt="parquet", history_days=730)`` writes one file per raw source (see ``ml/core/contract.py``) and,
with ``truth_as_of``, the ground truth under ``out_dir/_truth/``. It exists so the pipeline can
be tested and benchmarked on data whose true churn probabilities and campaign effects are known.

The latent model (parameters in :mod:`.params`)
-----------------------------------------------
Static traits per customer (:mod:`.world`), drawn once:
  signup day (spread over the history, growing), purchase rate ``lambda ~ Gamma`` (as in
  BG/NBD, scaled by acquisition channel and age), dropout hazard ``h0 ~ Gamma`` (scaled by
  channel), browsing rate ``rho ~ Gamma x lambda^0.6`` (scaled by device), basket size
  ``~ Gamma`` (gamma-gamma style spend), experience quality, price sensitivity, three
  favourite categories, an unobservable receptiveness to offers, and whether the customer is a
  "sleeping dog" (annoyed by contact; likelier among the low-engagement).

Dynamic state per customer, updated day by day (:mod:`.dynamics`):
  ``alive`` (dropout is absorbing) and an engagement ``z`` that reverts towards a personal
  level which falls with tenure (fatigue). Bad experiences -- ratings <= 2, unresolved
  tickets, cancelled or returned orders -- push ``z`` down at once; good orders nudge it up.
  Log-linear in ``z``:
      hazard      = min(cap, h0 * exp(-a*z - tau_now))          (P(drop out today))
      order rate  = lambda * season_t * exp(b*z + c*tau_now)     (P(order) = 1 - exp(-rate))
      browse rate = rho * season_t * exp(0.6*z)                  (browsing-only sessions)
  so browsing and buying thin out while the hazard climbs, ahead of the dropout. Alive
  customers visit several times a month; the dropped-out stop (a rare stray visit at
  ``dead_browse_share`` of their rate), so recent browsing reveals the hidden alive/dead state
  as in a real shop. Other leading indicators of a low ``z``: each order's experience is
  ``N(quality + 0.5*z, 1)`` (worse ratings, more tickets, cancellations and returns), and
  browsing-only sessions get shallower (more one-event visits) and abandon carts more often.
  Seasons are weekly and yearly (winter peak, Black Friday week).
  A ``grievance`` collects recent bad experiences and halves every 45 days.
  Every ~91 days a retention campaign picks at-risk customers (last completed order 21-120
  days ago), holds out ~15% as a random control group, and sends each treated customer one of
  the catalog's offers (``dbt_project/seeds/offer_catalog.csv``; a fixed hash picks it, so the
  history is a randomised experiment over offers) through their usual channel; for 60 days
  ``tau_now`` is the contact's true effect (:mod:`.offers`): channel x (receptiveness x the
  offer's pull - annoyance). The pull follows observable behaviour as the retention literature
  reports -- coupons move the price-sensitive (who use coupons and discounts; more for bigger
  coupons), service recovery the aggrieved (low ratings, tickets, cancellations, returns),
  recommendations the keen browsers -- and sleeping dogs' annoyance grows with tenure and
  repeat contact. The dropped-out cannot be saved (dropout is absorbing): lost causes.

Observations (:mod:`.tables`, :mod:`.events`): each order comes with items drawn from the
customer's favourite categories and a Zipf-skewed catalog (amount = lines - discount), maybe a
review (rating from the order's latent experience), maybe a support ticket; each order ends a
purchase session (login? search? views, add_to_cart, checkout, purchase) and browsing-only
sessions stop part-way down the funnel.

The truth (:mod:`.truth`) covers the customers active at the cutoff as the pipeline sees them
(at least one order of any status) and replays the same formulas forward from the latent state
at the cutoff: on the no-order path nothing random moves ``z``, so P(no order in the window) is
an exact vectorised recursion over the window's days (mixing over campaign assignment inside it).

The closed loop (:mod:`.simulate`): ``simulate(shop_dir, campaign_files, until, out_dir,
horizon_days=90, fmt="parquet")`` applies CRM campaign files (as ``churnwatch``'s export writes
them) to the same latent customers -- the shop is replayed from day 0 with the seed recorded in
``customers.parquet``'s footer and each file injected at the end of its as-of day -- and writes
the raw exports through ``until`` plus, per campaign, every active customer's probability of
staying for every offer and for none (``_truth/campaigns/``). Injections draw no random numbers
and the exports come from per-day random streams (:mod:`.streams`), so an empty campaign leaves
the generator's shop exactly as it is and a campaign changes only what follows it.
:mod:`.judge` scores any assignment against that truth (incremental customers retained,
sleeping dogs, lost causes; the oracle and random references).

Performance: everything is vectorised over customers; the only Python loops run over days.
The events are streamed to Parquet/CSV in row groups.
"""
from .generate import generate
from .simulate import simulate

__all__ = ["generate", "simulate"]
