"""Zero-shot TTS on codec tokens: shared data (`tts.data`), text front-end (`tts.text`), the model contract
(`tts.model`) and registry (`tts.registry`), one trainer (`tts.trainer`), synthesis (`tts.synthesis`), the
commands (`tts.cli`: `train-tts`, `synthesize`), the aligner (`tts.alignment`) and one folder per model
(`tts.valle`, `tts.mobilespeech`).

Dependencies: `tokenizer` <- `data_prep` <- `evaluation` <- `training` <- `tts`. Nothing heavy is imported
here; import the submodule you need.
"""
