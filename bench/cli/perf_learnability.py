"""``bench perf learnability``: how well a scorer CNN learns each face attribute's degree from the pictures."""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def probe(attribute: str, n_train: int, epochs: float, n_test: int, seed: int) -> dict[str, float]:
    """R^2 and correlation, on ``n_test`` fresh faces, of the twins' scorer CNN trained for ``epochs``
    on ``n_train`` faces of :func:`tasks.faces.generate_attributes` with ``attribute`` as target."""
    import torch

    from bench.tasks import faces
    from bench.tasks.image_task import pearson
    from bench.tasks.scorers import SmileScorer, build_network, predict, r2_score, train_regressor

    started = time.perf_counter()
    images, factors = faces.generate_attributes(n_train, seed, attribute)
    test_images, test_factors = faces.generate_attributes(n_test, seed + 1, attribute)
    network = build_network(SmileScorer, seed + 2)
    device = torch.device("cpu")
    train_regressor(network, images, factors[attribute], epochs=epochs, seed=seed + 3, device=device, progress=False)
    predicted = predict(network, test_images, device)
    truth = test_factors[attribute]
    return {"r2": r2_score(truth, predicted), "corr": pearson(truth, predicted),
            "seconds": time.perf_counter() - started}


def perf_main(name: str, argv: list[str]) -> int:
    """``bench perf learnability``: for each attribute of the five-attribute faces, the held-out R^2 of
    the scorer CNN trained briefly on its degree (about 0: the pictures do not show the degree).

    Prints one line per attribute, then as the last line one JSON object.
    """
    from bench.tasks import faces

    parser = argparse.ArgumentParser(prog=f"bench perf {name}", description=perf_main.__doc__)
    parser.add_argument("--attributes", default=",".join(faces.ATTRIBUTES), help="comma-separated attributes")
    parser.add_argument("--n-train", type=int, default=1500, help="training faces")
    parser.add_argument("--epochs", type=float, default=4.0)
    parser.add_argument("--n-test", type=int, default=300, help="fresh faces the R^2 is measured on")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)

    result: dict[str, object] = {"benchmark": name, "n_train": args.n_train, "epochs": args.epochs,
                                 "n_test": args.n_test, "attributes_version": faces.ATTRIBUTES_VERSION}
    for attribute in args.attributes.split(","):
        figures = probe(attribute, args.n_train, args.epochs, args.n_test, args.seed)
        result[attribute] = figures
        print(f"{attribute:11s} R^2 {figures['r2']:+.3f}  corr {figures['corr']:+.3f}  ({figures['seconds']:.0f} s)",
              flush=True)
    print(json.dumps(result))
    return 0
