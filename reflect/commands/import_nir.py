"""``reflect import-nir``: a NIR graph (from reflect, snnTorch, Norse, ...) as a reflect checkpoint that
goes on learning online.

    reflect import-nir policy.nir --env CartPole-v1         # -> policy_imported.pt, a fresh critic
    reflect import-nir actor.nir --env CartPole-v1 --critic critic.nir --out imported.pt
    reflect import-nir policy.nir --env CartPole-v1 --set learner.actor_lr=0.5 --dt 1e-3
    reflect train --resume policy_imported.pt --total-steps 50000     # learn on from the graph

The graph is a chain of spiking layers (NIR's LIF, CubaLIF, or LI -> Threshold nodes, fed by Affine or
Linear nodes, recurrent connections allowed) and an Affine readout (through an LI node for a leaky
readout); its time constants become reflect's decays at the step --dt by forward Euler (default: the
step recorded by reflect's export, else 1e-4 s, snnTorch's). The readout's outputs are the action logits
(Discrete) or the Gaussian mean (Box). A graph from reflect's export carries its observation statistics,
action head and config; any other runs on raw observations, with the tuned config of --env (--config,
--set change it, except the network, which the graph decides). NIR's LIF resets to v_reset, reflect's
neurons by subtracting their threshold: a graph of leaky LIF nodes is refused unless
--approximate-reset. docs/NIR.md gives the whole mapping; pip install "reflect-rl[nir]".
"""

from __future__ import annotations

import argparse
from pathlib import Path

from reflect.commands.common import positive_seconds, random_seed


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "import-nir", help="a NIR graph as a checkpoint that learns on (reflect train --resume)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("graph", type=Path, metavar="GRAPH.nir", help="the actor's NIR graph")
    parser.add_argument("--env", required=True, metavar="ENV_ID",
                        help="Gymnasium env id (or module:EnvId) the graph acts in")
    parser.add_argument("--critic", type=Path, default=None, metavar="CRITIC.nir",
                        help="the critic's graph: the actor's architecture with one output "
                             "(default: a fresh critic)")
    parser.add_argument("--out", type=Path, default=None, metavar="CHECKPOINT",
                        help="checkpoint to write (default: beside the graph, _imported.pt)")
    parser.add_argument("--seed", type=random_seed, default=0, help="random seed (default: 0)")
    parser.add_argument("--dt", type=positive_seconds, default=None, metavar="SECONDS",
                        help="the time step the graph's time constants are converted at")
    parser.add_argument("--config", type=Path, metavar="FILE", help="YAML hyperparameters keyed by env id")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config key, e.g. --set learner.actor_lr=0.5 (repeatable)")
    parser.add_argument("--approximate-reset", action="store_true",
                        help="read leaky LIF / CubaLIF nodes (reset to v_reset) as reflect's neurons "
                             "(reset by subtraction): the spikes differ where a membrane overshoots")
    parser.add_argument("--force", action="store_true", help="overwrite an existing checkpoint")
    parser.set_defaults(run=run)


def default_output_path(graph: Path) -> Path:
    """``policy.nir`` -> ``policy_imported.pt`` (not ``policy.pt``: reflect's export writes
    ``final_model.nir`` beside ``final_model.pt``)."""
    return graph.with_name((graph.stem if graph.suffix else graph.name) + "_imported.pt")


def run(args: argparse.Namespace) -> int:
    from reflect.agents.reflect_agent import Reflect
    from reflect.atomic_files import check_can_write
    from reflect.config import deep_merge, load_env_config, parse_overrides

    out = args.out if args.out is not None else default_output_path(args.graph)
    if out.suffix != ".pt":
        raise ValueError(f"--out '{out}' must end in .pt (a reflect checkpoint)")
    if out.exists() and not args.force:
        raise ValueError(f"'{out}' already exists; pass --force to overwrite it or choose another --out")
    check_can_write(out)
    config = load_env_config(args.config, args.env) if args.config is not None else {}
    config = deep_merge(config, parse_overrides(args.overrides))
    agent = Reflect.from_nir(args.graph, args.env, critic=args.critic, config=config, seed=args.seed,
                             dt=args.dt, approximate_reset=args.approximate_reset)
    try:
        path = agent.save(out)
    finally:
        agent.env.close()
    info = agent.run_info["nir_import"]
    normalized = "with its observation statistics" if agent.obs_normalizer is not None else \
        "on raw observations"
    critic = "the critic from " + str(args.critic) if args.critic is not None else "a fresh critic"
    print(f"wrote {path}: {info['network']} for {agent.env_id} (dt {info['dt']:g} s), {normalized}, {critic}")
    print(f"  learn on with: reflect train --resume {path} --total-steps N")
    return 0
