"""dfflows' reference config: every key a config has, set for a small DiffFlow on the embedded
offline MNIST subset that trains on 2 CPU cores in minutes.

It lives in the package so that every config file, wherever it is on disk, is checked
against the same key tree (`training/config_checks.check_keys`: a key missing or extra is an
error). `configs/default.py` returns it, and the other configs start from it and override
fields. Override any field on the command line, e.g. `--config.optim.lr=1e-3`.
"""
import ml_collections


def get_config() -> ml_collections.ConfigDict:
  """Returns the default (CPU-sized) DiffFlow configuration."""
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  config.data.name = 'mnist_embedded'  # mnist_embedded | mnist | mnist_idx | cifar10 | celeb_a
  config.data.data_dir = ''  # TFDS data_dir ('' = TFDS default).
  config.data.manual_dir = ''  # IDX files for 'mnist_idx' (e.g. ../shared/data/mnist).
  # The last this-many percent of the train split are the validation split: the periodic
  # eval, `best/` and every choice of a hyper-parameter use it; the rest trains.
  config.data.validation_percent = 10
  config.data.image_size = 32  # MNIST is zero-padded 28 -> 32; CelebA is cropped and resized.
  config.data.channels = 1

  config.model = ml_collections.ConfigDict()
  config.model.kind = 'diffflow'  # diffflow | flow | ddpm
  # 'bound': -log|det df/dx| + L_vlb(f(x)) (valid). 'thesis_eq_4_6': the thesis's
  # printed L_simple + log|det df/dx| (invalid; kept as an ablation: it collapses).
  config.model.objective = 'bound'
  # Signal for the U-Net in a DiffFlow: 'bound' (flow and U-Net trained on the bound in one
  # pass) or 'hybrid' (Improved DDPM's L_simple + vlb_weight * L_vlb with stop-gradient on the
  # mean, on a stop-gradient latent, in a second U-Net pass; the flow still trained on the
  # bound). The two compared: benchmarks/RESULTS.md.
  config.model.unet_loss = 'bound'
  # The U-Net (of 'diffflow' and 'ddpm') as a residual on the reverse process that is exact
  # for N(0, I) data: eps_hat = sqrt(1 - abar_t) x_t + U-Net, and the learned variance
  # starts at beta_t. With both, the DiffFlow at init is the flow with a Gaussian prior
  # and the diffusion can only add; the pixel DDPM's t = T-1 term starts near 0. Both
  # False: the plain Improved DDPM of the thesis (configs/mnist_ddpm.py, celeba_ddpm.py).
  config.model.eps_skip = True
  config.model.variance_skip = True
  # t of the bound's one-sample estimate: 'importance' (p_t ~ log(1-abar_t) - log(1-abar_{t-1}),
  # stratified; unbiased, far lower variance) | 'uniform'.
  config.model.t_sampling = 'importance'
  # DiffFlow only: subtract the one-sample bound of the N(0, I) reverse process at the same t
  # and noise and add its exact value -log N(z0; 0, I) (`GaussianDiffusion.one_sample_bound`).
  # Unbiased; the flow's gradient then carries far less of the diffusion's sampling noise.
  # Needs diffusion.learn_sigma.
  config.model.gaussian_control_variate = False
  # Warm start (LSGM's two-stage recipe): the workdir of a trained flow-only run with the same
  # flow section, whose checkpoint gives the DiffFlow's flow params and EMA ('' = off).
  config.model.warm_start = ''
  config.model.warm_start_step = 0  # The source run's checkpoint step; 0 = its latest.
  # The diffusion's latent: 'full' (the whole flow output) or 'top_level' (the flow's last
  # level only; the factored-out latents keep the flow's N(0, I) prior).
  config.model.prior = 'full'
  config.model.latent_squeeze = 1  # Squeeze the diffusion's latent this many times for the U-Net.
  config.model.temperature = 1.0  # Std of the prior at sampling time.
  # auto (fast on CPU, xla elsewhere) | xla | fast (custom-VJP conv; see dfflows/nets/conv.py).
  config.model.conv_impl = 'auto'

  config.flow = ml_collections.ConfigDict()
  config.flow.num_levels = 2
  # Flow steps (actnorm, 1x1 conv, coupling) per level; 8, with a narrow U-Net (unet.ch = 8),
  # against 2 and unet.ch = 16: see experiments/results/default_run.md.
  config.flow.num_steps = 8
  config.flow.hidden_channels = 16
  config.flow.num_res_blocks = 1
  config.flow.coupling = 'spline'  # spline | affine
  config.flow.num_bins = 8
  config.flow.tail_bound = 4.0
  config.flow.mask = 'channel'  # channel | checkerboard
  config.flow.conv1x1 = 'lu'  # lu | plain
  config.flow.scan = True  # nn.scan over identical steps: compile time independent of depth.
  config.flow.logit_alpha = 0.05  # Logit preprocessing x -> logit(alpha + (1 - 2 alpha) x); 0 = off.

  config.unet = ml_collections.ConfigDict()
  config.unet.ch = 8  # See flow.num_steps.
  config.unet.ch_mult = (1, 2)
  config.unet.num_res_blocks = 1
  config.unet.attn_resolutions = (8,)
  config.unet.dropout = 0.0
  config.unet.num_heads = 1
  # Compute dtype of the U-Net: 'bfloat16' = mixed precision for GPUs/TPUs (params, the
  # flow and the loss stay float32); 'float32' for CPUs.
  config.unet.dtype = 'float32'
  config.unet.remat = False  # Recompute block activations in the backward pass (less memory).

  config.diffusion = ml_collections.ConfigDict()
  config.diffusion.num_timesteps = 500
  config.diffusion.schedule = 'cosine'  # linear | cosine
  config.diffusion.learn_sigma = True
  config.diffusion.vlb_weight = 0.001  # lambda of the hybrid loss.
  config.diffusion.sample_steps = 100  # Respaced reverse steps for periodic samples.
  config.diffusion.sampler = 'ancestral'  # ancestral | ddim
  config.diffusion.ddim_eta = 0.0

  config.optim = ml_collections.ConfigDict()
  # Peak learning rate, after optim.warmup_steps (2e-3 against 1e-3: see
  # experiments/results/default_run.md).
  config.optim.lr = 2e-3
  config.optim.b1 = 0.9
  config.optim.b2 = 0.999
  config.optim.weight_decay = 0.0
  config.optim.warmup_steps = 50
  config.optim.schedule = 'cosine'  # constant | cosine (decay to 0 at train.num_steps)
  config.optim.grad_clip = 1.0  # Global-norm clipping (per parameter group); 0 = off.
  # The flow's parameter group (LSGM's backbone): its own learning rate, warm-up and schedule,
  # so that a warm-started flow can train slower than a fresh U-Net, or not at all.
  config.optim.flow = ml_collections.ConfigDict()
  config.optim.flow.lr_scale = 1.0  # The flow's peak lr = optim.lr * this; 0 freezes the flow.
  config.optim.flow.warmup_steps = -1  # -1 = optim.warmup_steps.
  config.optim.flow.schedule = 'same'  # same (as optim.schedule) | constant | cosine
  config.optim.ema_decay = 0.99  # Short CPU runs; the thesis configs use 0.9999.
  # Decay min(ema_decay, (1 + step) / (10 + step)): the average forgets the init early on.
  config.optim.ema_warmup = True

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = 32  # Global batch, split across all devices of all hosts.
  config.train.num_steps = 2000  # Optimizer steps.
  config.train.steps_per_call = 1  # Train steps per jitted call (lax.scan).
  config.train.log_every = 100
  config.train.eval_every = 500
  config.train.checkpoint_every = 500
  config.train.sample_every = 2000
  config.train.keep_checkpoints = 3
  config.train.max_bad_steps = 5  # Consecutive NaN/Inf steps tolerated before stopping.

  config.eval = ml_collections.ConfigDict()
  config.eval.batch_size = 64
  # Examples for eval bits/dim: of the validation split in training, of the test split in
  # dfflows.evaluate (0 = the whole split).
  config.eval.num_examples = 256
  # Monte Carlo draws of the full bound per test image in dfflows.evaluate (x_t per t, the
  # dequantization noise), averaged per image: draw 0's key depends on the seed alone.
  config.eval.bound_draws = 1
  # A DiffFlow's full bound minus the N(0, I) reverse process's at the same draws, plus that
  # process's exact -log N(z0; 0, I): unbiased, and far less noisy while the prior is near
  # N(0, I) (GaussianDiffusion.full_bound).
  config.eval.bound_control_variate = False
  config.eval.num_samples = 16  # Samples in the periodic PNG grid.
  config.eval.fid_num_samples = 256
  # The probability-flow ODE NLL of a DiffFlow in dfflows.evaluate: test images (0 = skip) and
  # Hutchinson probes per image (dfflows/diffusion/ode.py).
  config.eval.ode_examples = 128
  config.eval.ode_probes = 4
  # FID features: 'auto' (the classifier below for 1-channel images, InceptionV3 for RGB) |
  # 'classifier' (dfflows' MNIST classifier, trained on the train split) | 'inception'.
  config.eval.fid_features = 'auto'
  config.eval.classifier_steps = 3000  # Training steps of the FID feature classifier.
  # pytorch-fid's InceptionV3 weights as .npz (README, "Evaluation"); '' = no Inception FID.
  config.eval.inception_weights = ''
  config.eval.inception_dim = 2048  # 64 | 192 (the thesis's) | 768 | 2048 (the standard).

  config.distributed = ml_collections.ConfigDict()
  config.distributed.enabled = False  # Call jax.distributed.initialize() (multi-host).
  config.distributed.coordinator_address = ''  # '' = from environment (SLURM, TPU).
  config.distributed.num_processes = 0  # 0 = from environment.
  config.distributed.process_id = -1  # -1 = from environment.
  config.lock()  # A misspelt key in a config built from this one is an error.
  return config
