"""TTS trainers on codec tokens (VALL-E AR+NAR, MobileSpeech): planned, see the issues."""
