# python benchmarks/train_step.py --device cpu --variant nasgal --variant nasgal-compile --cells 2 --channels 8 --batch 32 --rounds 5 --steps 2 --threads 1 --json
