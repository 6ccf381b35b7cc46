FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json .npmrc tsconfig.json ./
COPY src ./src
COPY migrations ./migrations
COPY ui ./ui
RUN npm ci --no-audit --no-fund && npm prune --omit=dev
COPY models ./models
COPY fixtures ./fixtures
RUN mkdir -p /data && chown node /data
ENV NODE_ENV=production
USER node
ENTRYPOINT ["node", "dist/app/cli.js"]
CMD ["start"]
