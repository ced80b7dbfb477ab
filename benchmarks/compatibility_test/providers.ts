export const PROVIDERS = {
  vllm: {
    apiBaseUrl: "http://localhost:8000/v1",
    apiKey: "vllm",
    apiType: ["responses", "chat"], // choose from responses, chat, or both
    modelName: "openai/gpt-oss-120b",
    providerDetails: {
      // add any provider-specific details here. These will be passed as part of every request
      // for example to fix the provider for openrouter, you can do:
      // provider: {
      //   only: ["example"],
      // },
    },
  },
  // harmony-proxy: a local server, as benchmarks/bench_compat_suite.py starts it (the URL, model
  // and API types come from the environment so one entry serves every system it measures).
  local: {
    apiBaseUrl: process.env.COMPAT_BASE_URL ?? "http://127.0.0.1:8000/v1",
    apiKey: process.env.COMPAT_API_KEY ?? "local",
    apiType: (process.env.COMPAT_API_TYPES ?? "chat,responses").split(","),
    modelName: process.env.COMPAT_MODEL ?? "gpt-oss-demo",
    providerDetails: {},
  },
};
