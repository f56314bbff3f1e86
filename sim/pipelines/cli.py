"""``drive record``, ``drive perception``, ``drive compare``, ``drive study`` and
``drive train``: the pipelines' subcommands, registered by :func:`register` and run by the
``_cmd_*`` handlers.

Imports stay at the top, except the job modules behind each command (the pipelines, the
trainers, perception's detector training): they take seconds to import (highway-env,
torch, Stable-Baselines3, Minari, Ray, matplotlib), so each handler imports its own and
``drive --help`` and ``drive scenarios`` load none of them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agents import parse_agent
from agents.e2e.rig import DEFAULT_SIDE_VIEWS
from sim import arguments
from sim.harness.versions import git_revision, package_versions
from sim.world.scenarios import DEFAULT_SCENARIO, SCENARIOS, get_scenario


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``record``, ``perception``, ``compare``, ``study``, ``train`` and ``probe`` to
    ``subparsers``."""
    _register_record(subparsers)
    _register_perception(subparsers)
    _register_compare(subparsers)
    _register_study(subparsers)
    _register_train(subparsers)
    _register_probe(subparsers)


def _register_probe(subparsers: argparse._SubParsersAction) -> None:
    """``drive probe``: its parser and its handler."""
    s = subparsers.add_parser(
        "probe",
        help="does a learned policy look? its answers to counterfactual versions of a moment",
        description="The expert drives held-out seeds; every --every decisions AGENT is asked "
        "about the moment as its sensors show it and about counterfactual versions rendered by "
        "the same cameras: every other vehicle removed, a stopped car 15-30 m ahead in its "
        "lane, the lead at half its gap, the speed input +5 m/s. Prints the share of states "
        "where it brakes harder for the stopped car, the mean change of each action when the "
        "traffic vanishes, and its sensitivity to the speed input (sim.pipelines.probe).",
    )
    s.add_argument("agent", help="the policy to probe, e.g. e2e or e2e:RUN (it reads a camera)")
    s.add_argument("--scenario", default="highway", help="scenario (default: highway)")
    s.add_argument(
        "--episodes", type=arguments.positive_int, default=10, help="seeds (default: 10)"
    )
    s.add_argument(
        "--seed-start",
        type=arguments.seed,
        default=3000,
        help="first seed (default: 3000, apart from training and evaluation seeds)",
    )
    s.add_argument(
        "--every",
        type=arguments.positive_int,
        default=15,
        help="decisions between probed states (default: 15, one a second)",
    )
    s.add_argument(
        "--duration",
        type=arguments.duration,
        default=None,
        metavar="SECONDS",
        help="override the scenario's episode time limit [s]",
    )
    s.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"])
    s.add_argument("--out", default=None, metavar="FILE.json", help="also write every answer")
    s.add_argument(
        "--force", action="store_true", help="replace --out even when drive did not write it"
    )
    s.add_argument("--quiet", action="store_true", help="no progress lines")
    s.set_defaults(func=_cmd_probe)


def _cmd_probe(args) -> int:
    from sim.harness.io import check_output_file
    from sim.pipelines.probe import format_probe, probe_agent, write_probe

    parse_agent(args.agent)  # an unknown name lists the known ones
    if args.out:  # the output policy, before any work
        check_output_file(args.out, kind="drive probe", force=args.force, suffixes=(".json",))
    seeds = arguments.seed_range(args.seed_start, args.episodes, "--seed-start")
    result = probe_agent(
        args.agent,
        args.scenario,
        seeds,
        every=args.every,
        duration_s=args.duration,
        device=args.device,
        progress=not args.quiet,
    )
    print(format_probe(result))
    if args.out:
        write_probe(args.out, result)
        print(f"wrote {args.out}")
    return 0


def _register_record(subparsers: argparse._SubParsersAction) -> None:
    """``drive record``: its parser and its handler."""
    s = subparsers.add_parser(
        "record",
        help="record expert demonstrations as a Minari dataset",
        description="Drive episodes with the expert and record what the end-to-end network sees "
        "(camera, speed, command), the executed action and the expert's clean action "
        "(the label) as a Minari dataset (HDF5, lossless frames). --noise injects "
        "triangular steering impulses into the executed action for that fraction of "
        "the time (Codevilla et al. 2019); the label stays the expert's. The dataset "
        "is built in a temp folder and renamed into place when complete; Ctrl-C keeps "
        "the finished episodes as a smaller dataset (its metadata says interrupted), and "
        "a temp folder a killed recording left is removed by the next one to the same --out. "
        "Every episode carries a SHA-256 content hash that loading checks.",
    )
    s.add_argument("--agent", default="expert", help="the demonstrator (default: expert)")
    s.add_argument(
        "--scenario",
        default=DEFAULT_SCENARIO,
        help=f"scenario name (default: {DEFAULT_SCENARIO}; known: {', '.join(SCENARIOS)})",
    )
    s.add_argument(
        "--episodes", type=arguments.positive_int, default=40, help="episodes (default: 40)"
    )
    s.add_argument(
        "--seed",
        type=arguments.seed,
        default=1000,
        help="seed of the first episode; keep evaluation seeds (0..) apart (default: 1000)",
    )
    s.add_argument(
        "--noise",
        type=arguments.fraction,
        default=0.2,
        help="share of steps under a steering impulse, 0 for clean demos (default: 0.2)",
    )
    s.add_argument(
        "--duration",
        type=arguments.duration,
        default=None,
        metavar="SECONDS",
        help="override the scenario's episode time limit [s]",
    )
    s.add_argument(
        "--sensors",
        default="bev",
        choices=["bev", "rig"],
        help="what the network will see: bev, the bird's-eye raster (the e2e-bev agent), or rig, "
        "66x200 road crops of the rig's --cameras plus PilotNet's recovery views (the e2e "
        "agent) (default: bev)",
    )
    s.add_argument(
        "--cameras",
        default=None,
        metavar="A,B",
        help="rig: the cameras to record (default: cam_front; the rig has cam_front, cam_rear)",
    )
    s.add_argument(
        "--side-views",
        default=None,
        metavar="DY:YAW,...",
        help="rig: recovery views, each the cameras rendered from the car shifted DY m to the left "
        "and turned YAW deg, labelled by pure pursuit back to the expert's path; 'none' for "
        "none (default: " + ",".join(f"{dy:g}:{yaw:g}" for dy, yaw in DEFAULT_SIDE_VIEWS) + ")",
    )
    s.add_argument(
        "--out", required=True, metavar="DATASET", help="dataset folder (must not exist)"
    )
    s.add_argument(
        "--workers", type=arguments.positive_int, default=2, help="worker processes (default: 2)"
    )
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_record)


def _register_perception(subparsers: argparse._SubParsersAction) -> None:
    """``drive perception``: its parser and its handler."""
    s = subparsers.add_parser(
        "perception",
        help="record auto-labelled camera frames for detectors",
        description="'data': drive episodes with highway-env's autopilot and keep every "
        "--every-th step's frames of each of --cameras with their labels until "
        "--frames are recorded: every vehicle and obstacle in view as an ego-frame "
        "3D box (x, y, length, width, height, yaw, from ground truth) and, per "
        "camera, its visible fraction (from the instance mask), 2D box, projected "
        "centre and bottom-centre, depth and truncation; written as "
        "perception.dataset format 2 (sharded .npz + manifest.json, written last).",
    )
    s.add_argument("what", choices=["data"], help="what to do")
    s.add_argument(
        "--scenarios",
        default="highway,merge",
        metavar="A,B",
        help="scenarios, visited round-robin (default: highway,merge)",
    )
    s.add_argument(
        "--frames",
        type=arguments.positive_int,
        default=2000,
        help="frames to record (default: 2000)",
    )
    s.add_argument(
        "--cameras",
        default="bev",
        metavar="A,B",
        help="cameras to record: bev (the bird's-eye raster) and the rig's cam_front, "
        "cam_rear (default: bev)",
    )
    s.add_argument("--out", required=True, metavar="DIR", help="dataset folder (must not hold one)")
    s.add_argument(
        "--seed", type=arguments.seed, default=0, help="seed of the first episode (default: 0)"
    )
    s.add_argument(
        "--every",
        type=arguments.positive_int,
        default=5,
        help="keep every N-th step of an episode (default: 5)",
    )
    s.add_argument(
        "--per-episode",
        type=arguments.positive_int,
        default=40,
        help="at most N frames from one episode (default: 40)",
    )
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_perception)


def _register_compare(subparsers: argparse._SubParsersAction) -> None:
    """``drive compare``: its parser and its handler."""
    s = subparsers.add_parser(
        "compare",
        help="the main job: train what is missing, evaluate every agent, write the report",
        description="Make what the comparison needs and is not cached under runs/ (expert demos "
        "and the end-to-end network per scenario; for --sensors bev the bird's-eye detector "
        "too), run 'drive eval' of expert, modular, e2e and idm on lane-keep and highway with the "
        "same seeds - both paradigms from the camera rig - and write 'drive report' into "
        "runs/compare.  --sensors bev: the same comparison on the bird's-eye raster (modular-bev, "
        "e2e-bev; runs/compare-bev); --sensors rig,bev: all six on the same seeds, the sensor as "
        "an axis of the report (runs/compare-rig-bev).  Defaults: 20 seeds per scenario, about 16 "
        "min from nothing on 2 CPU cores (minutes once the checkpoints exist); --quick: 3 seeds "
        "and small networks under runs/quick.  An interrupted run resumes.",
    )
    s.add_argument("--quick", action="store_true", help="smoke view in a few minutes (runs/quick)")
    s.add_argument(
        "--sensors",
        type=_sensor_list,
        default=None,
        metavar="rig|bev|rig,bev",
        help="what both paradigms are compared on (default: rig)",
    )
    s.add_argument(
        "--episodes",
        type=arguments.positive_int,
        default=None,
        help="seeds per scenario (default: 20, --quick 3)",
    )
    s.add_argument(
        "--workers", type=arguments.positive_int, default=None, help="worker processes (default: 2)"
    )
    s.add_argument(
        "--videos",
        type=arguments.count,
        default=None,
        metavar="N",
        help="side-by-side videos per scenario (default: 2, --quick 1)",
    )
    s.add_argument(
        "--device", default="auto", choices=["auto", "cpu", "cuda"], help="(default: auto)"
    )
    s.add_argument("--quiet", action="store_true", help="no progress lines")
    s.set_defaults(func=_cmd_compare)


def _register_study(subparsers: argparse._SubParsersAction) -> None:
    """``drive study``: its parser and its handler."""
    s = subparsers.add_parser(
        "study",
        help="scaling study: closed-loop score of the e2e network against data and model size",
        description="Record (or reuse) one expert dataset, train PilotNet on nested subsets of it "
        "for every (data size, model size, training seed) cell with the same recipe and "
        "compute, drive each cell on the same held-out seeds, and chart driving score against "
        "labelled frames with the expert and the modular stack on the same sensors as references.  "
        "--sensors bev: the network sees the bird's-eye raster (reference modular-bev); --sensors "
        "rig: 66x200 road crops of the rig's --cameras, trained with PilotNet's recovery views "
        "(reference modular).  A rig frame with V recovery views takes (1+V) x 66x200x3 bytes of "
        "RAM per camera when a cell trains; the study prints the estimate first.  Resumable cell "
        "by cell (--resume).",
    )
    s.add_argument("what", choices=["scale"], help="the study")
    s.add_argument("--scenario", default="lane-keep", help="(default: lane-keep)")
    s.add_argument(
        "--frames",
        default="2k,5k,20k,50k",
        metavar="A,B",
        help="data sizes in labelled frames (default: 2k,5k,20k,50k)",
    )
    s.add_argument(
        "--models", default="s,m,l", metavar="A,B", help="PilotNet widths (default: s,m,l)"
    )
    s.add_argument(
        "--train-seeds",
        type=arguments.positive_int,
        default=3,
        help="training seeds per cell (default: 3)",
    )
    s.add_argument(
        "--episodes",
        type=arguments.positive_int,
        default=20,
        help="held-out seeds per cell (default: 20)",
    )
    s.add_argument(
        "--seed-start", type=arguments.seed, default=0, help="first held-out seed (default: 0)"
    )
    s.add_argument(
        "--samples", default="120k", help="training samples per cell, any size (default: 120k)"
    )
    s.add_argument("--max-epochs", type=arguments.positive_int, default=60, help="(default: 60)")
    s.add_argument(
        "--budget-min",
        type=arguments.minutes,
        default=15.0,
        help="training minutes per cell at most (default: 15)",
    )
    s.add_argument(
        "--stack",
        type=arguments.frames_stacked,
        default=1,
        help="frames stacked (default: 1; highway: 2)",
    )
    s.add_argument(
        "--duration",
        type=arguments.duration,
        default=None,
        metavar="SECONDS",
        help="episode length",
    )
    s.add_argument(
        "--sensors",
        default="bev",
        choices=["bev", "rig"],
        help="what the network sees: bev, the bird's-eye raster (e2e-bev), or rig, road crops of "
        "the rig's --cameras with recovery views (e2e) (default: bev)",
    )
    s.add_argument(
        "--cameras",
        default=None,
        metavar="A,B",
        help="rig: the cameras the network sees (default: cam_front; the rig has cam_front, "
        "cam_rear)",
    )
    s.add_argument(
        "--side-views",
        default=None,
        metavar="DY:YAW,...",
        help="rig: recovery views recorded with the demos, each the cameras rendered from the car "
        "shifted DY m left and turned YAW deg; 'none' for none (default: "
        + ",".join(f"{dy:g}:{yaw:g}" for dy, yaw in DEFAULT_SIDE_VIEWS)
        + ")",
    )
    s.add_argument(
        "--references",
        default=None,
        metavar="A,B",
        help="agents driven once as horizontal lines (default: expert,modular-bev; "
        "--sensors rig: expert,modular)",
    )
    s.add_argument(
        "--data",
        default=None,
        metavar="DATASET[,DATASET]",
        help="demos to take subsets of (default: record them into OUT/demos)",
    )
    s.add_argument(
        "--heldout-episodes",
        type=arguments.count,
        default=5,
        help="expert episodes in no subset, every cell's open-loop test set (default: 5; 0: none)",
    )
    s.add_argument(
        "--dagger-rounds",
        type=arguments.count,
        default=0,
        help="after behaviour cloning, DAgger rounds per cell, charted as lines of their own "
        "(default: 0; a study may add them on --resume)",
    )
    s.add_argument(
        "--dagger-episodes",
        type=arguments.positive_int,
        default=5,
        help="episodes collected per DAgger round (default: 5)",
    )
    s.add_argument(
        "--keep",
        default="last",
        choices=["last", "best"],
        help="weights a cell keeps: the final epoch (fixed compute) or the lowest loss on its own "
        "validation episodes, with early stopping (default: last; studies before it: best)",
    )
    s.add_argument(
        "--workers", type=arguments.positive_int, default=1, help="cells at a time (default: 1)"
    )
    s.add_argument(
        "--backend", default="local", choices=["local", "ray"], help="(default: local processes)"
    )
    s.add_argument(
        "--address", default=None, help="ray: the cluster address (default: start a local one)"
    )
    s.add_argument(
        "--device", default="cpu", choices=["auto", "cpu", "cuda"], help="(default: cpu)"
    )
    s.add_argument("--out", default=None, metavar="DIR", help="(default: runs/study/SCENARIO)")
    s.add_argument("--resume", action="store_true", help="continue the study in --out")
    s.add_argument("--quiet", action="store_true", help="no progress lines")
    s.set_defaults(func=_cmd_study)


def _head_weight(s: argparse.ArgumentParser, flag: str, alone: float, text: str) -> None:
    """An auxiliary head's loss-weight option: ``FLAG W``, ``FLAG`` alone (``alone``), or left
    out (0: no head)."""
    s.add_argument(
        flag,
        type=arguments.number_between(0.0, 10.0, f"a {flag[2:]} loss weight"),
        default=0.0,
        nargs="?",
        const=alone,
        metavar="W",
        help=f"e2e: {text}",
    )


def _register_train(subparsers: argparse._SubParsersAction) -> None:
    """``drive train``: its parser and its handler."""
    s = subparsers.add_parser(
        "train",
        help="train a network: detector, e2e (behaviour cloning), dagger or ppo (RL)",
        description="'detector': a vehicle detector on a dataset from 'drive perception data': "
        "--model centernet (default) the bird's-eye CenterNet on the bev camera, --model mono3d "
        "the monocular 3D detector on the rig's perspective cameras (one network for all of "
        "--cameras). 'e2e': the PilotNet policy by behaviour cloning on datasets from 'drive "
        "record' (split by episode, viewpoint + photometric augmentation, L1/MSE, AdamW "
        "+ cosine, early stopping, optional --budget-min). 'dagger': DAgger rounds from "
        "an e2e checkpoint (--init): roll out the policy mixed with the expert (beta), "
        "label every visited state with the expert, aggregate, fine-tune, and score each "
        "round in closed loop. 'ppo': reinforcement learning with Stable-Baselines3 PPO on the "
        "camera (+ speed) with the shaped reward of sim.pipelines.rl, PilotNet as the actor, "
        "from scratch or from an e2e network (--init e2e:RUN), K environment processes, "
        "a closed-loop evaluation every --eval-every steps (--resume continues an interrupted "
        "run). Each writes OUT/model.safetensors + a JSON config and TensorBoard logs in "
        "OUT/tensorboard.",
    )
    s.add_argument("what", choices=["detector", "e2e", "dagger", "ppo"], help="what to train")
    s.add_argument(
        "--data",
        default=None,
        metavar="DIR[,DIR]",
        help="detector: a 'drive perception data' dataset; e2e: demo datasets from "
        "'drive record' (comma-separated); dagger: the demos to aggregate with "
        "(default: the --init checkpoint's)",
    )
    s.add_argument(
        "--out", required=True, metavar="DIR", help="checkpoint folder (must not hold one)"
    )
    s.add_argument(
        "--model",
        default=None,
        help="detector: centernet (bird's-eye) or mono3d (rig cameras) (default: centernet); "
        "e2e/ppo: pilotnet-s, pilotnet-m or pilotnet-l (default: e2e pilotnet-m, ppo pilotnet-s)",
    )
    s.add_argument(
        "--cameras",
        default=None,
        metavar="A,B",
        help="detector mono3d: the dataset's perspective cameras to train on "
        "(default: all of them, e.g. cam_front,cam_rear)",
    )
    s.add_argument(
        "--stack", type=arguments.frames_stacked, default=1, help="e2e: frames stacked (default: 1)"
    )
    s.add_argument(
        "--stride",
        type=arguments.frames_stacked,
        default=1,
        help="e2e: control steps between stacked frames (default: 1)",
    )
    s.add_argument("--loss", default="l1", choices=["l1", "mse"], help="e2e: (default: l1)")
    s.add_argument(
        "--budget-min",
        type=arguments.minutes,
        default=0.0,
        help="e2e/dagger/detector: a cap on training minutes; it only cuts a run short, with a "
        "warning and the samples it got recorded (default: none)",
    )
    s.add_argument("--no-augment", action="store_true", help="e2e: no augmentation")
    s.add_argument(
        "--keyframe-weight",
        type=arguments.number_between(0.0, 100.0, "a keyframe weight"),
        default=0.0,
        help="e2e: weight each sample's loss by 1 + W x how much the expert's action changed "
        "from its previous step (keyframes, after Wen et al. 2021) (default: 0, all alike)",
    )
    s.add_argument(
        "--samples-per-epoch",
        type=arguments.count,
        default=0,
        help="e2e/dagger: samples drawn from the training split each epoch, fixing the compute "
        "as an aggregate grows (default: 0, all of it)",
    )
    s.add_argument(
        "--loader-workers",
        type=arguments.count,
        default=0,
        help="e2e/dagger: processes that make batches while the network trains (the same "
        "network with any number) (default: 0, in the trainer's process)",
    )
    s.add_argument(
        "--in-memory",
        action="store_true",
        help="e2e/dagger: hold the frames in memory instead of streaming them from a temp "
        "file per batch (faster on small sets; memory grows with the data) (default: stream; "
        "DRIVE_STREAM_DIR sets the temp folder)",
    )
    _head_weight(
        s,
        "--speed-head",
        0.05,
        "a CILRS speed-prediction branch from the image features, its L1 loss weighted W "
        "against the actions' (--speed-head alone: 0.05, CILRS's) (default: none)",
    )
    _head_weight(
        s,
        "--lead-head",
        1.0,
        "an auxiliary branch predicting the lead auto-label (gap to the car ahead, closing "
        "speed) from the image features, its L1 loss weighted W (--lead-head alone: 1) "
        "(default: none; needs demos recorded with the label)",
    )
    s.add_argument(
        "--speed-dropout",
        type=arguments.probability,
        default=0.0,
        help="e2e: share of training samples whose speed input is zeroed, against the speed "
        "shortcut (default: 0)",
    )
    s.add_argument(
        "--view-prob",
        type=arguments.probability,
        default=None,
        help="e2e/dagger: share of samples drawn from a recorded recovery view (rig demos) or "
        "given a viewpoint shift (bird's-eye demos); 0 trains on the centre view only; refused "
        "where it cannot take effect (--no-augment, rig demos without recovery views) "
        "(default: 0.5 where it can, else 0)",
    )
    s.add_argument(
        "--epochs",
        type=arguments.positive_int,
        default=None,
        help="at most this many epochs (default: detector 30, mono3d 12, e2e 20, dagger rounds 4)",
    )
    s.add_argument(
        "--batch-size",
        type=arguments.batch_size,
        default=None,
        help="(default: detector 32, e2e 64)",
    )
    s.add_argument(
        "--lr",
        type=arguments.learning_rate,
        default=None,
        help="AdamW peak learning rate (default: detector 2e-3, e2e 1e-3, dagger 3e-4)",
    )
    s.add_argument(
        "--width",
        type=arguments.width,
        default=None,
        help="detector: network width (default: centernet 32, mono3d 16)",
    )
    s.add_argument(
        "--patience",
        type=arguments.positive_int,
        default=None,
        help="stop after this many epochs without a better validation loss (mono3d: AP@2m) "
        "(default: 5, mono3d 4, e2e 4)",
    )
    s.add_argument(
        "--init",
        default=None,
        metavar="RUN",
        help="dagger: the e2e checkpoint to start from; ppo: e2e:RUN (BC -> PPO) or ppo:RUN",
    )
    s.add_argument(
        "--scenario",
        default=None,
        help="dagger/ppo: scenario (default: the --init checkpoint's); dagger: several, "
        "comma-separated (variants of the policy's scenario, e.g. highway,stopped-car,"
        "highway:dense), each collected every round, the first scored",
    )
    s.add_argument(
        "--steps",
        type=arguments.env_steps,
        default=200_000,
        help="ppo: environment steps, all environments together (default: 200000)",
    )
    s.add_argument(
        "--envs",
        type=arguments.workers,
        default=4,
        help="ppo: environments stepped in parallel (default: 4)",
    )
    s.add_argument(
        "--vec",
        default="subproc",
        choices=["subproc", "dummy"],
        help="ppo: one process per environment, or all in this one (default: subproc)",
    )
    s.add_argument(
        "--n-steps",
        type=arguments.positive_int,
        default=None,
        help="ppo: steps per environment per rollout (default: 256)",
    )
    s.add_argument(
        "--log-std-init",
        type=arguments.log_std,
        default=None,
        help="ppo: initial log std of the Gaussian policy (default: -1.6)",
    )
    s.add_argument(
        "--critic-warmup",
        type=arguments.env_steps0,
        default=None,
        help="ppo: environment steps at the start that train only the critic (default: 10000 "
        "with --init, else 0)",
    )
    s.add_argument(
        "--eval-every",
        type=arguments.env_steps,
        default=20_000,
        help="ppo: environment steps between closed-loop evaluations and checkpoints "
        "(default: 20000)",
    )
    s.add_argument(
        "--physics", default="fast", choices=["fast", "stock"], help="ppo: (default: fast)"
    )
    s.add_argument(
        "--duration",
        type=arguments.duration,
        default=None,
        metavar="SECONDS",
        help="ppo: episode time limit (default: the scenario's)",
    )
    s.add_argument(
        "--resume", action="store_true", help="ppo: continue the interrupted run in --out"
    )
    s.add_argument(
        "--rounds", type=arguments.positive_int, default=3, help="dagger: rounds (default: 3)"
    )
    s.add_argument(
        "--episodes",
        type=arguments.positive_int,
        default=10,
        help="dagger: episodes collected per round (default: 10)",
    )
    s.add_argument(
        "--beta",
        type=arguments.fraction,
        default=0.5,
        help="dagger: share of expert control in round 1, halved every round (default: 0.5)",
    )
    s.add_argument(
        "--eval-episodes",
        type=arguments.count,
        default=None,
        help="dagger: closed-loop episodes scored per round on seeds 10000.. (default: 20); "
        "ppo: per evaluation, on seeds 10000.. (default: 5)",
    )
    s.add_argument(
        "--workers",
        type=arguments.positive_int,
        default=2,
        help="dagger: worker processes (default: 2)",
    )
    s.add_argument("--seed", type=arguments.seed, default=0, help="(default: 0)")
    s.add_argument(
        "--device", default="auto", choices=["auto", "cpu", "cuda"], help="(default: auto)"
    )
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_train)


def _cmd_record(args) -> int:
    from sim.pipelines.record import (
        NoiseConfig,
        RecordingIncomplete,
        RecordingInterrupted,
        format_record_summary,
        record_dataset,
    )

    parse_agent(args.agent)
    scenario = get_scenario(
        args.scenario, **({"duration_s": args.duration} if args.duration is not None else {})
    )
    seeds = arguments.seed_range(args.seed, args.episodes, "--seed")
    rig = None
    if args.sensors == "bev":  # options the bird's-eye recording would ignore are refused
        for option, value in (("--cameras", args.cameras), ("--side-views", args.side_views)):
            if value is not None:
                raise ValueError(
                    f"{option} chooses what a rig recording records; with --sensors bev the "
                    "demos hold the bird's-eye raster only (drop it, or --sensors rig)"
                )
    else:
        from agents.e2e.rig import RigInput, parse_side_views
        from sim.geometry.pinhole import default_rig

        rig = RigInput.build(
            default_rig(),
            list(arguments.comma_list(args.cameras or "cam_front")),
            parse_side_views(
                args.side_views
                if args.side_views is not None
                else ",".join(f"{dy:g}:{yaw:g}" for dy, yaw in DEFAULT_SIDE_VIEWS)
            ),
        )
    try:
        summary = record_dataset(
            scenario,
            seeds,
            Path(args.out),
            noise=NoiseConfig(fraction=args.noise),
            expert=args.agent,
            workers=args.workers,
            progress=not args.quiet,
            keep_partial=True,
            rig=rig,
        )
    except (
        RecordingInterrupted
    ) as stop:  # our own line: the generic one would not say what was kept
        if stop.summary is None:
            print(
                f"drive record: interrupted before any episode finished; nothing is kept "
                f"(no dataset at {stop.path})",
                file=sys.stderr,
            )
        else:
            n = stop.summary["episodes"]
            print(
                f"drive record: interrupted; kept the {n} finished "
                f"episode{'s' if n != 1 else ''} of {stop.requested} as a smaller dataset "
                f"-> {stop.path} (its metadata says interrupted)",
                file=sys.stderr,
            )
        return 130
    except RecordingIncomplete as e:  # worker processes died: one line, what was kept, what next
        print(f"drive record: {e}", file=sys.stderr)
        return 1
    print(format_record_summary(summary))
    return 0


def _cmd_perception(args) -> int:
    from sim.pipelines.perception_data import check_cameras, dataset_size_bytes, record_frames

    names = arguments.scenario_list(args.scenarios)
    cameras = check_cameras([c.strip() for c in args.cameras.split(",") if c.strip()])
    out = Path(args.out)
    manifest = record_frames(
        names,
        args.frames,
        out,
        seed=args.seed,
        every=args.every,
        per_episode=args.per_episode,
        cameras=cameras,
        progress=not args.quiet,
    )
    size = dataset_size_bytes(out) / 1e6
    print(
        f"dataset: {out}  frames {manifest['frames']}  labels {manifest['labels']}  "
        f"shards {len(manifest['shards'])}  episodes {manifest['recorder']['episodes']}  "
        f"{size:.1f} MB  scenarios {', '.join(names)}  cameras {', '.join(cameras)}"
    )
    return 0


def _sensor_list(text: str) -> tuple[str, ...]:
    """``--sensors``: ``rig``, ``bev`` or both, comma-separated."""
    from sim.pipelines.compare import SENSORS

    out = tuple(x.strip() for x in text.split(",") if x.strip())
    if not out or any(x not in SENSORS for x in out) or len(set(out)) != len(out):
        raise argparse.ArgumentTypeError(f"expected rig, bev or rig,bev, got {text!r}")
    return out


def _cmd_compare(args) -> int:
    from sim.pipelines.compare import get_recipe, run_compare

    recipe = get_recipe(args.quick, episodes=args.episodes, sensors=args.sensors)
    summary = run_compare(
        recipe,
        device=args.device,
        workers=args.workers,
        videos=args.videos,
        quiet=args.quiet,
        argv=sys.argv,
    )
    print(f"report: {summary['report']['html']}")
    return 0


def _cmd_study(args) -> int:
    from sim.pipelines.study import StudyConfig, parse_sizes, run_study, write_study_report

    models = tuple(m.strip().removeprefix("pilotnet-") for m in args.models.split(",") if m.strip())
    refs = (
        None
        if args.references is None
        else tuple(a.strip() for a in args.references.split(",") if a.strip())
    )
    rig = {}
    if args.cameras is not None:
        rig["cameras"] = tuple(c.strip() for c in args.cameras.split(",") if c.strip())
    if args.side_views is not None:
        from agents.e2e.rig import parse_side_views

        rig["side_views"] = parse_side_views(args.side_views)
    cfg = StudyConfig(
        scenario=args.scenario,
        frames=parse_sizes(args.frames),
        models=models,
        train_seeds=args.train_seeds,
        episodes=args.episodes,
        seed_start=args.seed_start,
        samples=parse_sizes(args.samples)[0],
        max_epochs=args.max_epochs,
        budget_s=60.0 * args.budget_min,
        stack=args.stack,
        duration_s=args.duration,
        references=refs,
        data=tuple(d for d in (args.data or "").split(",") if d),
        heldout_episodes=args.heldout_episodes,
        dagger_rounds=args.dagger_rounds,
        dagger_episodes=args.dagger_episodes,
        keep=args.keep,
        sensors=args.sensors,
        **rig,
    )
    out = Path(args.out or f"runs/study/{args.scenario}")
    run_study(
        cfg,
        out,
        workers=args.workers,
        device=args.device,
        resume=args.resume,
        backend=args.backend,
        address=args.address,
        progress=not args.quiet,
        argv=sys.argv,
    )
    paths = write_study_report(out)
    print(
        "\n".join(
            line for line in paths["md"].read_text().splitlines()[2:] if not line.startswith("![")
        )
    )
    for kind in ("md", "html", "chart"):
        print(f"{kind + ':':<6} {paths[kind]}")
    return 0


def _cmd_train(args) -> int:
    meta = {"git_revision": git_revision(), "versions": package_versions(), "command": sys.argv}
    if args.what == "e2e":
        return _train_e2e(args, meta)
    if args.what == "dagger":
        return _train_dagger(args, meta)
    if args.what == "ppo":
        return _train_ppo(args, meta)
    if not args.data:
        raise ValueError(
            "drive train detector needs --data (a dataset from 'drive perception data')"
        )
    model = args.model or "centernet"
    if model not in DETECTOR_MODELS:
        raise ValueError(f"unknown detector model {model!r}; known: {', '.join(DETECTOR_MODELS)}")
    if model == "mono3d":
        return _train_mono3d(args, meta)
    if args.cameras is not None:
        raise ValueError(
            "--cameras is for --model mono3d; the centernet detector reads the bev camera"
        )
    from perception.detectors.train import TrainConfig, train_detector

    recipe = TrainConfig(
        epochs=args.epochs or 30,
        batch_size=args.batch_size or 32,
        lr=args.lr or 2e-3,
        width=args.width or 32,
        seed=args.seed,
        patience=args.patience or 5,
        budget_s=60.0 * args.budget_min,
    )
    result = train_detector(
        args.data, args.out, recipe, device=args.device, progress=not args.quiet, extra_meta=meta
    )
    best = result["history"][result["best_epoch"] - 1]
    print(
        f"checkpoint: {args.out}  best epoch {result['best_epoch']}/{len(result['history'])}  "
        f"val loss {best['val_loss']:.4f}  val AP@2m {best['val_ap_2m']:.3f}  "
        f"({best['elapsed_s']:.0f} s; TensorBoard logs in {Path(args.out) / 'tensorboard'})"
    )
    return 0


DETECTOR_MODELS = ("centernet", "mono3d")  # drive train detector --model


def _train_mono3d(args, meta: dict) -> int:
    from perception.detectors.train_mono3d import Mono3DTrainConfig, train_mono3d

    cameras = tuple(c.strip() for c in (args.cameras or "").split(",") if c.strip())
    recipe = Mono3DTrainConfig(
        epochs=args.epochs or 12,
        batch_size=args.batch_size or 32,
        lr=args.lr or 2e-3,
        width=args.width or 16,
        seed=args.seed,
        patience=args.patience or 4,
        cameras=cameras,
        budget_s=60.0 * args.budget_min,
    )
    result = train_mono3d(
        args.data, args.out, recipe, device=args.device, progress=not args.quiet, extra_meta=meta
    )
    best = result["history"][result["best_epoch"] - 1]
    bands = "  ".join(
        f"{k.removeprefix('val_ap_2m_')} {v:.3f}"
        for k, v in best.items()
        if k.startswith("val_ap_2m_")
    )
    print(
        f"checkpoint: {args.out}  best epoch {result['best_epoch']}/{len(result['history'])} "
        f"({result['stopped']})  val loss {best['val_loss']:.4f}  "
        f"val AP@2m {best['val_ap_2m']:.3f} ({bands})  "
        f"{result['parameters']:,} parameters  {result['train_seconds']:.0f} s; "
        f"TensorBoard logs in {Path(args.out) / 'tensorboard'}"
    )
    return 0


def _e2e_recipe(args, **overrides):
    from agents.e2e.train import E2ETrainConfig

    values = {
        "model": args.model or "pilotnet-m",
        "stack": args.stack,
        "stride": args.stride,
        "loss": args.loss,
        "epochs": args.epochs or 20,
        "batch_size": args.batch_size or 64,
        "lr": args.lr or 1e-3,
        "patience": args.patience or 4,
        "seed": args.seed,
        "augment": not args.no_augment,
        "budget_s": 60.0 * args.budget_min,
        "view_prob": args.view_prob,
        "speed_dropout": args.speed_dropout,
        "speed_head": args.speed_head,
        "lead_head": args.lead_head,
        "samples_per_epoch": args.samples_per_epoch,
        "keyframe_weight": args.keyframe_weight,
    }
    values.update(overrides)
    return E2ETrainConfig(**values)


def _train_e2e(args, meta: dict) -> int:
    from agents.e2e.train import train_e2e

    if not args.data:
        raise ValueError(
            "drive train e2e needs --data (datasets from 'drive record', comma-separated)"
        )
    if args.cameras is not None:
        raise ValueError(
            "--cameras is for drive train detector --model mono3d; drive train e2e reads the "
            "cameras its demos were recorded with (drive record --sensors rig --cameras A,B)"
        )
    result = train_e2e(
        [d for d in args.data.split(",") if d],
        args.out,
        _e2e_recipe(args),
        device=args.device,
        progress=not args.quiet,
        extra_meta=meta,
        stream=not args.in_memory,
        loader_workers=args.loader_workers,
    )
    print(format_training(result))
    return 0


def format_training(result: dict) -> str:
    best = result["history"][result["best_epoch"] - 1]
    return (
        f"checkpoint: {result['out']}  best epoch {result['best_epoch']}/{len(result['history'])} "
        f"({result['stopped']})  val loss {best['val_loss']:.4f}  "
        f"{result['parameters']:,} parameters  {result['train_seconds']:.0f} s\n"
        f"throughput: training {result['train_samples_per_s']:.0f} samples/s, data loading alone "
        f"{result['loader_samples_per_s']:.0f} samples/s  ({result['train_frames']} train / "
        f"{result['val_frames']} validation frames; "
        f"TensorBoard logs in {Path(result['out']) / 'tensorboard'})"
    )


def _train_dagger(args, meta: dict) -> int:
    from sim.pipelines.dagger import DaggerConfig, format_dagger, run_dagger

    if not args.init:
        raise ValueError(
            "drive train dagger needs --init RUN (an e2e checkpoint from 'drive train e2e')"
        )
    if args.cameras is not None:
        raise ValueError(
            "drive train dagger takes no --cameras: the rounds record the cameras the --init "
            "network sees"
        )
    config = DaggerConfig(
        rounds=args.rounds,
        episodes=args.episodes,
        beta=args.beta,
        eval_episodes=20 if args.eval_episodes is None else args.eval_episodes,
        workers=args.workers,
    )
    recipe = _e2e_recipe(
        args, epochs=args.epochs or 4, lr=args.lr or 3e-4, patience=args.patience or 2
    )
    data = [d for d in args.data.split(",") if d] if args.data else None
    result = run_dagger(
        args.init,
        args.out,
        config,
        recipe,
        scenario=args.scenario,
        data=data,
        device=args.device,
        progress=not args.quiet,
        extra_meta=meta,
        stream=not args.in_memory,
        loader_workers=args.loader_workers,
    )
    print(format_dagger(result))
    return 0


def _train_ppo(args, meta: dict) -> int:
    from sim.pipelines.ppo import PPOConfig, format_ppo, train_ppo

    for option, value, why in (
        ("--cameras", args.cameras, "the PPO policy sees the bird's-eye raster (bev)"),
        ("--view-prob", args.view_prob, "PPO draws no recovery views (e2e and dagger do)"),
    ):
        if value is not None:
            raise ValueError(f"drive train ppo takes no {option}: {why}")
    values = {
        "steps": args.steps,
        "envs": args.envs,
        "vec": args.vec,
        "model": args.model or "pilotnet-s",
        "seed": args.seed,
        "budget_s": 60.0 * args.budget_min,
        "fast_physics": args.physics == "fast",
        "eval_every": args.eval_every,
        "eval_episodes": 5 if args.eval_episodes is None else args.eval_episodes,
        "critic_warmup": (
            args.critic_warmup if args.critic_warmup is not None else (10_000 if args.init else 0)
        ),
        "duration_s": args.duration,
    }
    for arg, field in (
        ("lr", "lr"),
        ("batch_size", "batch_size"),
        ("epochs", "n_epochs"),
        ("n_steps", "n_steps"),
        ("log_std_init", "log_std_init"),
    ):
        if getattr(args, arg) is not None:
            values[field] = getattr(args, arg)
    result = train_ppo(
        args.scenario,
        args.out,
        PPOConfig(**values),
        init=args.init,
        device=args.device,
        resume=args.resume,
        progress=not args.quiet,
        extra_meta=meta,
    )
    print(format_ppo(result))
    print(
        f"TensorBoard logs in {Path(args.out) / 'tensorboard'}; "
        f"drive it with: drive run --agent ppo:{args.out} "
        f"--scenario {result['scenario']}"
    )
    return 0
