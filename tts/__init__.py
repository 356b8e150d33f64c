"""Zero-shot TTS on codec tokens: shared data (`tts.data`), text front-end (`tts.text`), trainer
(`tts.trainer`), synthesis (`tts.synthesize`) and one folder per model (`tts.valle`).

Dependencies: `tokenizer` <- `data_prep` <- `evaluation` <- `training` <- `tts`. Nothing heavy is imported
here; import the submodule you need.
"""
