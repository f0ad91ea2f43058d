"""infill over HTTP: the llama.cpp, Ollama and OpenAI completion protocols (`infill serve --http`)."""
