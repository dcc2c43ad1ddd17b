#!/bin/sh
echo "hello from the production image"
